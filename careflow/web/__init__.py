"""The web pages beside the FHIR API (``/app``): sign-in and the care-team member's worklist.

An adapter like the API: it reads and writes only through the repository port, opened for the
signed-in person's principal (``careflow.web.session`` turns the page cookie into the API's bearer
token), so a page shows exactly what the API would let that person see.
"""
