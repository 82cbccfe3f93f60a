"""The GitHub workflows pass actionlint and zizmor, CD deploys only a commit whose CI tests passed, and the
pull-request previews build, compare, comment and tear down as ``preview.yml`` promises."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # the lock has PyYAML, not its stubs

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
BIN = Path(sys.executable).parent
# Job conditions that let a job run after a job it needs failed or was cancelled.
RUNS_AFTER_A_FAILURE = ("always()", "failure()", "cancelled()")


def lint(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / tool), *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.linters
def test_workflows_pass_actionlint() -> None:
    result = lint("actionlint")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.linters
def test_workflows_pass_zizmor() -> None:
    result = lint("zizmor", "--offline", ".github/")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings" in result.stdout + result.stderr


Job = dict[str, Any]


def _jobs(workflow: str) -> dict[str, Job]:
    return dict(yaml.safe_load((WORKFLOWS / workflow).read_text())["jobs"])


def _runs(job: Job, command: str) -> bool:
    return any(command in step.get("run", "") for step in job.get("steps", []))


def _needs(job: Job) -> list[str]:
    needs = job.get("needs", [])
    return [needs] if isinstance(needs, str) else list(needs)


def _needed(jobs: dict[str, Job], name: str) -> set[str]:
    """Every job ``name`` waits for, directly or through the jobs it needs."""
    found: set[str] = set()
    pending = _needs(jobs[name])
    while pending:
        needed = pending.pop()
        if needed not in found:
            found.add(needed)
            pending.extend(_needs(jobs[needed]))
    return found


TESTS = "$/.github/workflows/test.yml"  # the reusable workflow of the tests, called by ci.yml and cd.yml


def _runs_when_a_needed_job_failed(job: Job) -> bool:
    return any(call in str(job.get("if", "")) for call in RUNS_AFTER_A_FAILURE)


def _passes_when_a_step_failed(job: Job) -> bool:
    return job.get("continue-on-error") is True or any(s.get("continue-on-error") is True for s in job["steps"])


def test_the_reusable_tests_run_make_test_and_fail_when_it_fails() -> None:
    jobs = _jobs("test.yml")
    assert [name for name, job in jobs.items() if _runs(job, "make test")], "test.yml does not run make test"
    forgiving = [name for name, job in jobs.items() if _passes_when_a_step_failed(job)]
    assert not forgiving, f"{forgiving} pass even when the tests fail"


def test_ci_runs_the_reusable_tests() -> None:
    assert [name for name, job in _jobs("ci.yml").items() if job.get("uses") == TESTS]


def test_no_deploy_job_runs_unless_the_tests_passed() -> None:
    """Each job that runs ``dataops deploy`` needs, directly or not, the reusable tests of the same commit, and
    no job on the way runs after a failure."""
    cd = _jobs("cd.yml")
    gates = {name for name, job in cd.items() if job.get("uses") == TESTS}
    deploys = [name for name, job in cd.items() if _runs(job, "dataops deploy")]
    assert deploys, "cd.yml no longer runs dataops deploy"
    assert gates, "no job of cd.yml runs the tests"
    for deploy in deploys:
        chain = {deploy} | _needed(cd, deploy)
        assert gates & chain, f"{deploy} does not wait for the tests"
        unconditional = [name for name in chain if _runs_when_a_needed_job_failed(cd[name])]
        assert not unconditional, f"{unconditional} run even when a job they need failed"


def test_every_cd_job_checks_out_the_pushed_commit() -> None:
    """So the tests, the build and the deploys are of one commit: no checkout of this repository names a ref."""
    for name, job in (_jobs("cd.yml") | _jobs("test.yml")).items():
        for step in job.get("steps", []):
            inputs = step.get("with", {})
            if step.get("uses", "").startswith("actions/checkout@") and "repository" not in inputs:
                assert "ref" not in inputs, f"{name} checks out {inputs['ref']}, not the pushed commit"


def test_ci_checks_lineage_against_the_spec_of_the_locked_openlineage_client() -> None:
    """CI's copy of the official OpenLineage spec is the release the locked client was generated from."""
    locked = re.search(r"^openlineage-python==(\S+)", (ROOT / "requirements.lock").read_text(), re.MULTILINE)
    assert locked is not None
    ci = (WORKFLOWS / "test.yml").read_text()
    checkout = re.search(r"repository: OpenLineage/OpenLineage\n\s+ref: (\S+)", ci)
    assert checkout is not None, "test.yml no longer checks out the OpenLineage spec"
    assert checkout.group(1) == locked.group(1)
    assert "OPENLINEAGE_SPEC_DIR:" in ci


# --- Pull-request previews (preview.yml) ---------------------------------------------------------------------------

PREVIEW = "preview.yml"
MARKER = "<!-- dataops-preview -->"  # the first line of `dataops preview`'s comment.md, by the CLI's contract
REPO = "acme/dataops"
PR = 7
PR_EVENTS = ("opened", "synchronize", "reopened")
STATUS_FUNCTIONS = ("success", "failure", "cancelled", "always")
_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<number>\d+)|(?P<op>==|!=|&&|\|\||[!(),])"
    r"|(?P<name>[A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)*))"
)
DATAOPS = ".venv/bin/dataops "
UP, DIFF = DATAOPS + "preview up", DATAOPS + "preview diff"
BOT = "github-actions[bot]"  # the author of comments made with the workflow's token
_EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)


def _tokens(text: str) -> list[tuple[str, str]]:
    found, position, text = [], 0, text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        assert match and match.lastgroup, f"unsupported expression syntax at {text[position:]!r}"
        found.append((match.lastgroup, match.group(match.lastgroup)))
        position = match.end()
    return found


def _equal(left: Any, right: Any) -> bool:
    if isinstance(left, str) and isinstance(right, str):
        return left.casefold() == right.casefold()  # GitHub compares strings ignoring case
    return bool(left == right)


class _Expression:
    """The part of GitHub's expression language these workflows use: contexts, literals, ``! == != && || ( )``,
    ``contains``, ``fromJSON`` and the status functions, with GitHub's precedence and value semantics. ``status`` is
    what came before: ``success``, ``failure`` (a needed job or an earlier step failed) or ``cancelled``."""

    def __init__(self, text: str, context: dict[str, Any], status: str) -> None:
        self.tokens, self.position, self.context, self.status = _tokens(text), 0, context, status

    def value(self) -> Any:
        result = self._or()
        assert self.position == len(self.tokens), f"unparsed tail {self.tokens[self.position :]}"
        return result

    def _peek(self) -> str | None:
        return self.tokens[self.position][1] if self.position < len(self.tokens) else None

    def _take(self) -> tuple[str, str]:
        self.position += 1
        return self.tokens[self.position - 1]

    def _or(self) -> Any:
        left = self._and()
        while self._peek() == "||":
            self._take()
            right = self._and()
            left = left or right
        return left

    def _and(self) -> Any:
        left = self._equality()
        while self._peek() == "&&":
            self._take()
            right = self._equality()
            left = left and right
        return left

    def _equality(self) -> Any:
        left = self._unary()
        if self._peek() in ("==", "!="):
            operator = self._take()[1]
            return _equal(left, self._unary()) == (operator == "==")
        return left

    def _unary(self) -> Any:
        if self._peek() == "!":
            self._take()
            return not self._unary()
        return self._primary()

    def _primary(self) -> Any:
        kind, text = self._take()
        if text == "(":
            inner = self._or()
            assert self._take()[1] == ")"
            return inner
        if kind == "string":
            return text[1:-1].replace("''", "'")
        if kind == "number":
            return int(text)
        if self._peek() == "(":
            return self._call(text)
        assert kind == "name", f"unexpected {text!r}"
        found: Any = self.context
        for part in text.split("."):
            found = found.get(part) if isinstance(found, dict) else None
        return found

    def _call(self, name: str) -> Any:
        self._take()
        arguments = []
        while self._peek() != ")":
            arguments.append(self._or())
            if self._peek() == ",":
                self._take()
        self._take()
        if name in STATUS_FUNCTIONS:
            return name in ("always", self.status)
        if name == "fromJSON":
            return json.loads(arguments[0])
        assert name == "contains", f"unsupported function {name}"
        haystack, needle = arguments
        if isinstance(haystack, list):
            return any(_equal(item, needle) for item in haystack)
        return str(needle).casefold() in str(haystack).casefold()


def _holds(condition: Any, context: dict[str, Any], status: str = "success") -> bool:
    """Whether a job or step runs: its ``if`` as GitHub evaluates it (``success()`` when it names no status)."""
    text = _EXPRESSION.sub(r"\1", str(condition if condition is not None else "success()"))
    if not any(re.search(rf"\b{function}\(", text) for function in STATUS_FUNCTIONS):
        text = f"success() && ({text})"
    return bool(_Expression(text, context, status).value())


def _render(value: Any, context: dict[str, Any]) -> str:
    """A value with each ``${{ }}`` replaced as GitHub writes it into the environment."""

    def written(match: re.Match[str]) -> str:
        result = _Expression(match.group(1), context, "success").value()
        return "" if result is None else str(result).lower() if isinstance(result, bool) else str(result)

    return _EXPRESSION.sub(written, str(value))


def _event(action: str = "synchronize", *, fork: bool = False, **more: Any) -> dict[str, Any]:
    """The expression context of one ``pull_request`` event of pull request ``PR``."""
    head = {"sha": "0" * 40, "repo": {"full_name": "someone/dataops" if fork else REPO}}
    github = {
        "event": {"action": action, "pull_request": {"number": PR, "head": head}},
        "repository": REPO,
        "token": "token-of-the-run",
        "server_url": "https://github.invalid",
        "run_id": 42,
    }
    return {"github": github, "vars": {}, "needs": {}, "steps": {}} | more


def _workflow(name: str) -> dict[Any, Any]:
    return dict(yaml.safe_load((WORKFLOWS / name).read_text()))


def _preview_job() -> Job:
    return _jobs(PREVIEW)["preview"]


def _step(job: Job, command: str) -> Job:
    """The one step of ``job`` whose script runs ``command``."""
    (found,) = [step for step in job["steps"] if re.search(rf"^\s*{re.escape(command)}\b", step.get("run", ""), re.M)]
    return found


def _step_named(job: Job, name: str) -> Job:
    (found,) = [step for step in job["steps"] if step.get("name") == name or step.get("id") == name]
    return found


def _fake(path: Path, script: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(script)
    path.chmod(0o755)


# Stand-ins for the tools a step calls: each records its arguments, one line per call, in $FAKE_LOG.
FAKE_DATAOPS = '#!/bin/sh\necho "dataops $*" >> "$FAKE_LOG"\nexit "${FAKE_STATUS:-0}"\n'
FAKE_MAKE = '#!/bin/sh\necho "make $*" >> "$FAKE_LOG"\n'
# GitHub's API as `gh api` answers it: a GET prints the pages in $FAKE_PAGES one after the other with --paginate, the
# first page only without; a PATCH or POST records its method, path and JSON body.
FAKE_GH = f"""#!{sys.executable}
import json, os, sys
args = sys.argv[1:]
path = next(arg for arg in args if arg.startswith("repos/"))
if "--method" not in args:
    pages = json.load(open(os.environ["FAKE_PAGES"]))
    for page in pages if "--paginate" in args else pages[:1]:
        print(json.dumps(page))
    sys.exit(0)
body = json.load(open(args[args.index("--input") + 1]))
call = {{"method": args[args.index("--method") + 1], "path": path, "body": body["body"]}}
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(call) + "\\n")
"""


class StepRun:
    """One ``run:`` step executed as the runner executes it, in ``workdir``, with the job's and the step's ``env``
    rendered from ``context`` and fakes of ``dataops``, ``make`` and ``gh`` first on the PATH."""

    def __init__(self, workdir: Path, job: Job, step: Job, context: dict[str, Any], **extra_env: str) -> None:
        self.workdir, self.log = workdir, workdir / "fake.log"
        self.outputs, self.summary = workdir / "github_output", workdir / "step_summary"
        _fake(workdir / ".venv" / "bin" / "dataops", FAKE_DATAOPS)
        _fake(workdir / "bin" / "make", FAKE_MAKE)
        _fake(workdir / "bin" / "gh", FAKE_GH)
        declared = job.get("env", {}) | step.get("env", {})
        env = {name: _render(value, context) for name, value in declared.items()}
        runner = {"GITHUB_OUTPUT": str(self.outputs), "GITHUB_STEP_SUMMARY": str(self.summary)}
        fakes = {"FAKE_LOG": str(self.log), "PATH": f"{workdir / 'bin'}:{os.environ['PATH']}"}
        shell = ["-eo", "pipefail"] if step.get("shell") == "bash" else ["-e"]  # GitHub's bash defaults
        self.result = subprocess.run(
            ["bash", "--noprofile", "--norc", *shell, "-c", step["run"]],
            cwd=workdir,
            env={"HOME": str(workdir), **env, **runner, **fakes, **extra_env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def output(self) -> dict[str, str]:
        lines = self.outputs.read_text().splitlines() if self.outputs.exists() else []
        return dict(line.split("=", 1) for line in lines)


def test_previews_run_on_pull_request_events_never_on_pull_request_target() -> None:
    """``pull_request_target`` would run the pull request's code with the base repository's token and secrets."""
    workflow = _workflow(PREVIEW)
    triggers = workflow[True]  # YAML 1.1 reads the bare key `on` as true
    assert "pull_request_target" not in triggers
    assert set(triggers) == {"pull_request"}
    assert set(triggers["pull_request"]["types"]) == {*PR_EVENTS, "closed"}


def test_one_run_per_pull_request_and_only_a_push_cancels_one() -> None:
    """A push supersedes the preview of the older head; ``closed`` (and the rest) waits, so a teardown never races
    or cuts short an ``up``."""
    concurrency = _workflow(PREVIEW)["concurrency"]
    assert _render(concurrency["group"], _event()) == f"preview-{PR}"
    cancels = {action: _render(concurrency["cancel-in-progress"], _event(action)) for action in (*PR_EVENTS, "closed")}
    assert cancels == {"opened": "false", "synchronize": "true", "reopened": "false", "closed": "false"}


def test_the_preview_job_builds_then_compares_on_prods_runner_and_skips_closed(tmp_path: Path) -> None:
    job = _preview_job()
    assert job["runs-on"] == ["self-hosted", "dataops-prod"]
    assert {action: _holds(job.get("if"), _event(action)) for action in (*PR_EVENTS, "closed")} == {
        "opened": True,
        "synchronize": True,
        "reopened": True,
        "closed": False,
    }
    (checkout,) = [step for step in job["steps"] if step.get("uses", "").startswith("actions/checkout@")]
    assert checkout["with"]["ref"] == "${{ github.event.pull_request.head.sha }}"
    positions = [job["steps"].index(step) for step in (checkout, *(_step(job, c) for c in ("make install", UP, DIFF)))]
    assert positions == sorted(positions), "checkout, make install, preview up, preview diff: in this order"
    prod = tmp_path / "environments"
    (prod / "prod").mkdir(parents=True)
    context = _event(vars={"DATAOPS_DEPLOY_ROOT": str(prod)})
    for command in (UP, DIFF):  # the fakes log both calls in one file
        run = StepRun(tmp_path, job, _step(job, command), context)
        assert run.result.returncode == 0, run.result.stderr
    assert run.calls() == [
        f"dataops preview up --pr {PR} --base prod --max-previews 3",  # 3 while the variable is empty
        f"dataops preview diff --pr {PR}",
    ]
    run_env = {name: _render(value, context) for name, value in job["env"].items()}
    assert run_env["DATAOPS_DATA_ROOT"] == run_env["DATAOPS_DEPLOY_ROOT"] == str(prod)
    assert run_env["PREVIEW_DIR"] == f"{prod}/pr-{PR}/preview"  # where `dataops preview` writes its report
    assert _render(job["env"]["MAX_PREVIEWS"], _event(vars={"DATAOPS_MAX_PREVIEWS": "5"})) == "5"


def test_the_preview_job_refuses_to_run_without_prods_root(tmp_path: Path) -> None:
    """Without the variable (empty for a fork's pull request) the tooling would compare with an empty default root."""
    job = _preview_job()
    check = _step_named(job, "prod's environment root is configured")
    assert job["steps"].index(check) < job["steps"].index(_step(job, "make install"))
    missing = StepRun(tmp_path, job, check, _event())
    assert missing.result.returncode == 1
    assert "DATAOPS_DEPLOY_ROOT" in missing.result.stdout
    (tmp_path / "root" / "prod").mkdir(parents=True)
    present = StepRun(tmp_path, job, check, _event(vars={"DATAOPS_DEPLOY_ROOT": str(tmp_path / "root")}))
    assert present.result.returncode == 0, present.result.stdout


@pytest.mark.parametrize(("up_status", "compares"), [(0, True), (1, True), (3, False)])
def test_a_failed_up_still_compares_and_fails_the_job(tmp_path: Path, up_status: int, compares: bool) -> None:
    """The comment shows failed checks beside the diff, the job stays red; a refused ``up`` built nothing to diff."""
    job = _preview_job()
    assert not _passes_when_a_step_failed(job), "a failed preview would leave the pull request green"
    up = StepRun(tmp_path, job, _step(job, UP), _event(), FAKE_STATUS=str(up_status))
    assert up.result.returncode == up_status
    outcome = "success" if up_status == 0 else "failure"
    steps = {"up": {"outputs": up.output(), "outcome": outcome}}
    diff = _step(job, DIFF)
    assert _holds(diff.get("if"), _event(steps=steps), outcome) is compares
    assert not _holds(diff.get("if"), _event(steps=steps), "cancelled")


def test_a_cancelled_up_removes_its_half_built_preview(tmp_path: Path) -> None:
    job = _preview_job()
    cleanup = _step_named(job, "remove the half-built preview of a cancelled run")
    interrupted = {"up": {"outputs": {}, "outcome": "cancelled"}}
    assert _holds(cleanup.get("if"), _event(steps=interrupted), "cancelled")
    for outcome in ("success", "failure"):
        assert not _holds(cleanup.get("if"), _event(steps={"up": {"outcome": outcome}}), outcome)
    assert StepRun(tmp_path, job, cleanup, _event()).calls() == [f"dataops preview down --pr {PR}"]


@pytest.mark.parametrize("written", [True, False])
def test_every_preview_run_shows_the_comment_in_its_summary(tmp_path: Path, written: bool) -> None:
    """For a fork's pull request, whose token cannot comment, the summary is where the comment is."""
    job = _preview_job()
    summary = _step_named(job, "summary")
    root = tmp_path / "root"
    comment = root / f"pr-{PR}/preview/comment.md"
    if written:
        comment.parent.mkdir(parents=True)
        comment.write_text(f"{MARKER}\n### Changed assets\n")
    steps = {"up": {"outputs": {"status": "1"}}}
    assert _holds(summary.get("if"), _event(steps=steps), "failure")
    run = StepRun(tmp_path, job, summary, _event(steps=steps, vars={"DATAOPS_DEPLOY_ROOT": str(root)}))
    assert run.result.returncode == 0, run.result.stderr
    if written:
        assert run.summary.read_text() == comment.read_text()
        assert run.output() == {"comment": "true"}
    else:
        assert "exit status: 1" in run.summary.read_text()
        assert run.output() == {}
    (upload,) = [step for step in job["steps"] if step.get("uses", "").startswith("actions/upload-artifact@")]
    uploaded = _render(upload["with"]["path"], {"env": {"PREVIEW_DIR": str(comment.parent)}})
    assert uploaded.rstrip("/") == str(comment.parent)
    assert _holds(upload.get("if"), _event(), "failure"), "the files of a failed preview are kept too"


def test_the_teardown_runs_preview_down_only_when_the_pull_request_closed(tmp_path: Path) -> None:
    jobs = _jobs(PREVIEW)
    teardowns = [name for name, job in jobs.items() if name != "preview" and _runs(job, "preview down")]
    assert teardowns == ["teardown"]
    teardown = jobs["teardown"]
    assert teardown["runs-on"] == ["self-hosted", "dataops-prod"]
    assert [action for action in (*PR_EVENTS, "closed") if _holds(teardown.get("if"), _event(action))] == ["closed"]
    # a push after a reopen cancels the run: the teardown job and its steps keep going
    assert _holds(teardown.get("if"), _event("closed"), "cancelled")
    assert all(_holds(step.get("if"), _event("closed"), "cancelled") for step in teardown["steps"])
    (tmp_path / "root" / "prod").mkdir(parents=True)
    context = _event("closed", vars={"DATAOPS_DEPLOY_ROOT": str(tmp_path / "root")})
    run = StepRun(tmp_path, teardown, _step(teardown, DATAOPS + "preview down"), context)
    assert run.result.returncode == 0, run.result.stderr
    assert run.calls() == ["make install", f"dataops preview down --pr {PR}"]


def test_only_the_comment_job_writes_and_it_skips_forks_and_cancelled_runs() -> None:
    assert _workflow(PREVIEW)["permissions"] == {"contents": "read"}
    jobs = _jobs(PREVIEW)
    writers = [name for name, job in jobs.items() if "write" in json.dumps(job.get("permissions", {}))]
    assert writers == ["comment"]
    comment = jobs["comment"]
    assert comment["permissions"] == {"pull-requests": "write"}
    assert comment["runs-on"] == "ubuntu-24.04"
    assert _needs(comment) == ["preview"]
    written = {"preview": {"outputs": {"comment": "true"}}}
    condition = comment.get("if")
    assert _holds(condition, _event(needs=written), "success")
    assert _holds(condition, _event(needs=written), "failure"), "failed checks must reach the pull request"
    assert not _holds(condition, _event(needs=written), "cancelled")
    assert not _holds(condition, _event(fork=True, needs=written), "success"), "a fork's token cannot comment"
    assert not _holds(condition, _event("closed", needs={"preview": {"outputs": {}}}), "success")


# The comment job runs on GitHub's Ubuntu runners, which have jq; a machine without it cannot run the script.
needs_jq = pytest.mark.skipif(
    shutil.which("jq") is None, reason="jq, which the comment job's script calls, is not on PATH"
)


def _comment(tmp_path: Path, pages: list[list[dict[str, Any]]], body: str) -> list[dict[str, Any]]:
    """Runs the comment job's posting step against ``pages`` of existing comments; the API calls it made."""
    comment = _jobs(PREVIEW)["comment"]
    (download,) = [step for step in comment["steps"] if step.get("uses", "").startswith("actions/download-artifact@")]
    artifact = tmp_path / download["with"]["path"]
    artifact.mkdir(parents=True)
    (artifact / "comment.md").write_text(body)
    (tmp_path / "pages.json").write_text(json.dumps(pages))
    post = _step(comment, "id=$(gh api")
    run = StepRun(tmp_path, comment, post, _event(), FAKE_PAGES=str(tmp_path / "pages.json"))
    assert run.result.returncode == 0, run.result.stderr
    return [json.loads(call) for call in run.calls()]


def _existing(comment_id: int, login: str, body: str) -> dict[str, Any]:
    return {"id": comment_id, "user": {"login": login}, "body": body}


@needs_jq
def test_the_comment_job_updates_its_marked_comment_in_place(tmp_path: Path) -> None:
    """The marker line finds the comment, on any page; a person's comment quoting the marker is not touched."""
    post = _step(_jobs(PREVIEW)["comment"], "id=$(gh api")
    assert post["env"]["MARKER"] == MARKER
    pages = [
        [_existing(1, "a-reviewer", f"Why does\n{MARKER}\nshow?"), _existing(2, BOT, "another bot's comment")],
        [_existing(3, BOT, f"{MARKER}\r\nthe previous preview"), _existing(4, BOT, f"{MARKER}\nlater")],
    ]
    body = f"{MARKER}\n### Changed assets\n- core/flights\n"
    assert _comment(tmp_path, pages, body) == [
        {"method": "PATCH", "path": f"repos/{REPO}/issues/comments/3", "body": body}
    ]


@needs_jq
def test_the_comment_job_posts_a_new_comment_when_none_is_marked(tmp_path: Path) -> None:
    """Also cut to GitHub's limit (65,536 characters), the marker line kept first."""
    pages = [[_existing(2, BOT, "another bot's comment mentioning dataops-preview")], []]
    body = f"{MARKER}\n" + "| asset | rows |\n" * 5000
    (call,) = _comment(tmp_path, pages, body)
    assert (call["method"], call["path"]) == ("POST", f"repos/{REPO}/issues/{PR}/comments")
    assert call["body"].startswith(f"{MARKER}\n| asset | rows |")
    assert 60_000 < len(call["body"]) <= 65_536
    assert "https://github.invalid/acme/dataops/actions/runs/42" in call["body"]


def test_every_action_is_pinned_by_commit_sha_and_keeps_no_credentials() -> None:
    """A tag can be moved to other code; a commit cannot. A checkout's token left in .git would reach every
    later step, the pull request's code included."""
    for workflow in sorted(WORKFLOWS.glob("*.yml")):
        for name, job in _jobs(workflow.name).items():
            for step in [job, *job.get("steps", [])]:
                uses = step.get("uses")
                if uses is None or ("@" not in uses and "/.github/workflows/" in uses):  # none, or this repository's
                    continue
                assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", uses), f"{workflow.name}: {name}: {uses}"
                if uses.startswith("actions/checkout@"):
                    assert step["with"]["persist-credentials"] is False, f"{workflow.name}: {name}"


def test_no_script_splices_a_github_expression() -> None:
    """A pull request's title, branch or any context spliced into a script is shell injection: contexts reach
    scripts through ``env:``."""
    for workflow in sorted(WORKFLOWS.glob("*.yml")):
        for name, job in _jobs(workflow.name).items():
            for step in job.get("steps", []):
                assert "${{" not in step.get("run", ""), f"{workflow.name}: {name}: {step.get('name', step['run'])}"
