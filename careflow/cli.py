"""The ``careflow`` command. Every failure is one readable line and a non-zero exit, never a traceback."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import Optional

import orjson
import typer

from careflow.errors import CareflowError, PatientDataError, ProgramError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="careflow: shared care plans on FHIR R4.")
programs_app = typer.Typer(no_args_is_help=True, help="Validate, view and export care programmes.")
app.add_typer(programs_app, name="programs")

ProgramsOpt = typer.Option(None, "--programs", envvar="CAREFLOW_PROGRAMS", help="folder of programme YAML files")


def _programs(folder: Optional[Path]) -> dict:
    from careflow.programs.loader import load_directory

    return load_directory(folder)


def _print_json(data: object) -> None:
    sys.stdout.buffer.write(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")


@programs_app.command("validate")
def programs_validate(paths: Optional[list[Path]] = typer.Argument(
        None, help="programme files or folders; default: the programmes careflow uses ($CAREFLOW_PROGRAMS or its own)")) -> None:
    """Check programme files; list every problem with file:line:column."""
    import warnings

    from careflow.programs.loader import YamlPortabilityWarning, default_program_dir, load_program, program_files

    paths = paths or [default_program_dir()]
    files = program_files(paths)
    if not files:
        raise CareflowError("no programme files (*.yaml) found in " + ", ".join(map(str, paths)))
    problems = []
    for f in files:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", YamlPortabilityWarning)
            try:
                load_program(f)
                typer.echo(f"{f}: ok")
            except ProgramError as exc:
                problems.extend(exc.problems)
        for w in caught:
            if issubclass(w.category, YamlPortabilityWarning):
                where, _, what = str(w.message).partition(": ")
                typer.echo(f"{where}: warning: {what}", err=True)
    if problems:
        raise ProgramError(problems)


@programs_app.command("show")
def programs_show(program_id: str = typer.Argument(..., metavar="ID"), programs: Optional[Path] = ProgramsOpt,
                  language: str = typer.Option("en", "--language", "-l", help="en or nl")) -> None:
    """The pathway as a readable timeline per role."""
    from careflow.programs.loader import find_program
    from careflow.programs.timeline import render

    if language not in ("en", "nl"):
        raise CareflowError("--language must be en or nl")
    typer.echo(render(find_program(_programs(programs), program_id), language), nl=False)


@programs_app.command("export")
def programs_export(program_id: str = typer.Argument(..., metavar="ID"), programs: Optional[Path] = ProgramsOpt) -> None:
    """Print a FHIR Bundle with the programme's PlanDefinition and ActivityDefinitions."""
    from careflow.programs.loader import find_program
    from careflow.programs.plandefinition import to_bundle

    _print_json(to_bundle(find_program(_programs(programs), program_id)))


@programs_app.command("schema")
def programs_schema() -> None:
    """Print the JSON Schema of programme files (care_programs/schema.json)."""
    from careflow.programs.schema import render

    typer.echo(render(), nl=False)


def _read_json(path: Path) -> object:
    try:
        return orjson.loads(path.read_bytes())
    except OSError as exc:
        raise PatientDataError(f"cannot read {path}: {exc.strerror or exc}") from None
    except orjson.JSONDecodeError as exc:
        raise PatientDataError(f"{path} is not valid JSON: {exc}") from None


@app.command("plan")
def plan_command(
    program_id: str = typer.Option(..., "--program", help="programme id, e.g. heart-failure"),
    patient: Path = typer.Option(..., "--patient", help="a FHIR Patient, or a Bundle with the Patient, Conditions, Observations"),
    start: Optional[str] = typer.Option(None, "--start", help="plan start date (YYYY-MM-DD), default today"),
    programs: Optional[Path] = ProgramsOpt,
) -> None:
    """Plan one patient: print the transaction Bundle (CarePlan, Goals, CareTeam, Tasks)."""
    from careflow.planning.patient import context_from_bundle
    from careflow.planning.planner import plan
    from careflow.programs.loader import find_program

    try:
        day = date.fromisoformat(start) if start else date.today()
    except ValueError:
        raise CareflowError(f"--start {start!r} is not a date like 2026-01-31") from None
    program = find_program(_programs(programs), program_id)
    ctx = context_from_bundle(_read_json(patient))  # type: ignore[arg-type]
    _print_json(plan(program, ctx, day).bundle())


def _register_optional_commands() -> None:
    """Commands of the server and the engine live in their adapters; they register themselves here."""
    import importlib

    for module in ("careflow.api.cli", "careflow.store.keys_cli", "careflow.audit.cli", "careflow.engine.cli",
                   "careflow.engine.financing_cli", "workflows.cli", "workflows.stratify_cli",
                   "workflows.case_finding_cli", "workflows.measures_cli"):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):
                continue
            raise
        mod.register(app)


def main(argv: list[str] | None = None) -> int:
    _register_optional_commands()
    try:
        app(args=argv, standalone_mode=False)
    except CareflowError as exc:
        if isinstance(exc, ProgramError):
            for p in exc.problems:
                typer.echo(str(p), err=True)
            typer.echo(f"careflow: {len(exc.problems)} problem{'s' if len(exc.problems) != 1 else ''} found", err=True)
        else:
            typer.echo(f"careflow: error: {exc}", err=True)
        return 1
    except KeyboardInterrupt:
        typer.echo("careflow: interrupted", err=True)
        return 130
    except SystemExit as exc:
        return int(exc.code or 0) if isinstance(exc.code, int) else 1
    except Exception as exc:  # click usage errors and anything unforeseen: one line, never a traceback
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):  # typer/click usage errors
            hint = " (try --help)" if type(exc).__name__ in ("UsageError", "NoSuchOption", "MissingParameter", "BadParameter") else ""
            typer.echo(f"careflow: error: {exc.format_message()}{hint}", err=True)
            return int(exc.exit_code)
        if type(exc).__name__ == "Abort":
            return 1
        typer.echo(f"careflow: internal error: {type(exc).__name__}: {exc}", err=True)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
