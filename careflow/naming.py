"""The URIs careflow mints: identifier systems, extensions, local code systems and profiles.

Kept in one place so the planner, the profiles in ``fhir_profiles/``, the store and the engine
never spell one differently.
"""

BASE = "https://careflow.dev/fhir"

# identifier systems
TASK_IDENTIFIER = f"{BASE}/sid/task"  # value: "<careplan id>/<activity id>/<occurrence>"
CAREPLAN_IDENTIFIER = f"{BASE}/sid/careplan"  # value: "<patient id>/<programme id>"
SHARED_CAREPLAN_IDENTIFIER = f"{BASE}/sid/shared-careplan"  # value: "<patient id>" (one shared plan per patient)
SSIN = "https://www.ehealth.fgov.be/standards/fhir/core/NamingSystem/ssin"
NIHDI = "https://www.ehealth.fgov.be/standards/fhir/core/NamingSystem/nihdi"

# local code systems
TASK_BUSINESS_STATUS = f"{BASE}/CodeSystem/task-business-status"  # on-time | overdue | escalated
CAREPLAN_FLAG = f"{BASE}/CodeSystem/careplan-flag"  # attention
TASK_REASON = f"{BASE}/CodeSystem/task-reason"  # recurring | dependency | escalation | observation | reassignment | review | discharge
POPULATION_GROUP = f"{BASE}/CodeSystem/population-group"  # A | B | C | D
POPULATION_RULES = f"{BASE}/CodeSystem/population-rules"  # a stratification rule set (code: its id, version: its version)
STRATIFICATION_IDENTIFIER = f"{BASE}/sid/stratification"  # value: "<patient id>/<rule set id>" (one RiskAssessment each)
EXT_STRATIFICATION_RULE = f"{BASE}/StructureDefinition/stratification-rule"  # valueId: the rule that placed the patient
EXT_STRATIFICATION_FLAG = f"{BASE}/StructureDefinition/stratification-flag"  # valueString: e.g. a frailty screen too old to use
TASK_KIND = f"{BASE}/CodeSystem/task-kind"  # inclusion-proposal
SELF_MANAGEMENT = f"{BASE}/CodeSystem/self-management-level"  # high | moderate | low (zelfregie)
COORDINATION_STEP = f"{BASE}/CodeSystem/coordination-step"  # self | care-team | care-coach | case-manager

# extensions
EXT_ATTENTION = f"{BASE}/StructureDefinition/careplan-attention"  # valueBoolean on CarePlan
EXT_SELF_MANAGEMENT = f"{BASE}/StructureDefinition/self-management-level"  # valueCodeableConcept on the shared CarePlan
EXT_COORDINATION_STEP = f"{BASE}/StructureDefinition/coordination-step"  # valueCodeableConcept on the shared CarePlan
EXT_NEIGHBOURHOOD = f"{BASE}/StructureDefinition/neighbourhood"  # valueString on Patient / CareTeam / Task
EXT_OCCURRENCE = f"{BASE}/StructureDefinition/task-occurrence"  # valuePositiveInt on Task
SUBSCRIPTION_OWNER = f"{BASE}/StructureDefinition/subscription-owner"  # valueString: the principal who made it
EXT_TRIGGER = f"{BASE}/StructureDefinition/task-trigger"  # valueString: the programme trigger id that raised it

# profiles
PROFILE_CAREPLAN = f"{BASE}/StructureDefinition/careflow-careplan"
PROFILE_SHARED_CAREPLAN = f"{BASE}/StructureDefinition/careflow-shared-careplan"
PROFILE_TASK = f"{BASE}/StructureDefinition/careflow-task"
PROFILE_GOAL = f"{BASE}/StructureDefinition/careflow-goal"
PROFILE_CARETEAM = f"{BASE}/StructureDefinition/careflow-careteam"

# canonical of ActivityDefinitions compiled from a programme: "<programme base>/ActivityDefinition/<program>-<activity>"
def activity_definition_url(program_url: str, program_id: str, activity_id: str) -> str:
    base = program_url.rsplit("/PlanDefinition/", 1)[0]
    return f"{base}/ActivityDefinition/{program_id}-{activity_id}"

# HL7 Belgium profiles careflow's own profiles derive from or point at (canonicals of the published IGs)
BE_PATIENT_CARE = "https://www.ehealth.fgov.be/standards/fhir/patient-care/StructureDefinition"
BE_CORE = "https://www.ehealth.fgov.be/standards/fhir/core/StructureDefinition"
BE_PROFILE_CAREPLAN = f"{BE_PATIENT_CARE}/be-care-plan"
BE_PROFILE_CARETEAM = f"{BE_PATIENT_CARE}/be-careteam"
BE_PROFILE_GOAL = f"{BE_PATIENT_CARE}/be-goal"
BE_PROFILE_TASK = f"{BE_PATIENT_CARE}/be-task"
BE_PROFILE_PATIENT = f"{BE_CORE}/be-patient"
BE_PROFILE_PRACTITIONER = f"{BE_CORE}/be-practitioner"
BE_PROFILE_PRACTITIONERROLE = f"{BE_CORE}/be-practitionerrole"
BE_PROFILE_ORGANIZATION = f"{BE_CORE}/be-organization"

# --- PlanDefinition / ActivityDefinition compilation (careflow.programs.plandefinition) ---
# standard
EXT_TRANSLATION = "http://hl7.org/fhir/StructureDefinition/translation"  # on a primitive's _element: lang + content
USAGE_CONTEXT_TYPE = "http://terminology.hl7.org/CodeSystem/usage-context-type"
PLAN_DEFINITION_TYPE = "http://terminology.hl7.org/CodeSystem/plan-definition-type"
GOAL_CATEGORY_HL7 = "http://terminology.hl7.org/CodeSystem/goal-category"
ACTION_TYPE = "http://terminology.hl7.org/CodeSystem/action-type"
RESOURCE_TYPES = "http://hl7.org/fhir/resource-types"
# careflow semantics FHIR has no element for
GOAL_CATEGORY = f"{BASE}/CodeSystem/goal-category"  # physiologic (the HL7 goal-category has no such code)
EXT_PLAN_PERIOD = f"{BASE}/StructureDefinition/plan-period"  # valueDuration on PlanDefinition
EXT_ELIGIBILITY = f"{BASE}/StructureDefinition/eligibility"  # complex: group*, new-diagnosis-within, any-age
EXT_CARE_ROLE = f"{BASE}/StructureDefinition/care-role"  # complex: id (valueId), role (valueCodeableConcept)
EXT_CARE_ROLE_REF = f"{BASE}/StructureDefinition/care-role-ref"  # valueId on an action participant
EXT_ISO_DURATION = f"{BASE}/StructureDefinition/iso8601-duration"  # valueString: exact text of an inexact Duration
EXT_START_OFFSET = f"{BASE}/StructureDefinition/start-offset"  # valueDuration on a recurring action
EXT_DUE_WITHIN = f"{BASE}/StructureDefinition/due-within"  # valueDuration on an action
EXT_PATIENT_INSTRUCTION = f"{BASE}/StructureDefinition/patient-instruction"  # complex: en, nl (valueString)
EXT_TARGET_STABLE_WITHIN = f"{BASE}/StructureDefinition/target-stable-within"  # valueQuantity on goal.target
EXT_TARGET_RATIO = f"{BASE}/StructureDefinition/target-ratio"  # valueRatio on PlanDefinition.goal.target (R4 has no detailRatio there)
EXT_TRIGGER_ACTIVITY = f"{BASE}/StructureDefinition/trigger-activity"  # valueCode (activity id or any)
EXT_OVERDUE_BY = f"{BASE}/StructureDefinition/overdue-by"  # valueDuration on a TriggerDefinition
EXT_OBSERVATION_RULE = f"{BASE}/StructureDefinition/observation-rule"  # complex: above|below|rises-by|falls-by, within, value-in
EXT_THEN_STEP = f"{BASE}/StructureDefinition/then-step"  # valueCode on a trigger's nested action
EXT_SHARED_ACTIVITY = f"{BASE}/StructureDefinition/shared-activity"  # valueId: the key that merges activities across programmes
EXT_SEASON = f"{BASE}/StructureDefinition/season"  # complex on an action: opens, closes (valueString MM-DD)
EXT_ONLY_IF_FACT = f"{BASE}/StructureDefinition/only-if-fact"  # complex on action.condition: one patient fact

# --- demo region (careflow.region) ---
# careflow's role ids as a code system: gp | pharmacist | home-nurse | physiotherapist | dietitian | care-coach |
# case-manager | hf-educator | diabetes-educator | psychologist | podiatrist | nephrologist (PractitionerRole.code)
CARE_ROLE_SYSTEM = f"{BASE}/CodeSystem/role"
