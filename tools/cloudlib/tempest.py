#    Licensed under the Apache License, Version 2.0 (the "License"); you may
#    not use this file except in compliance with the License. You may obtain
#    a copy of the License at
#
#         http://www.apache.org/licenses/LICENSE-2.0
#
#    Unless required by applicable law or agreed to in writing, software
#    distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
#    WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
#    License for the specific language governing permissions and limitations
#    under the License.
"""Tempest against the one-machine cloud: configuration, run, summary.

:func:`write_config` makes a Tempest workspace in ``<state>/tempest`` and
writes its ``etc/tempest.conf`` for a cloud of Keystone, Glance and Cinder
only (no Nova, Neutron or Swift), with this package's Tempest plugin
configured. :func:`run` runs ``tempest run --regex volume`` with the
exclusions of :data:`EXCLUSIONS`, keeps the subunit stream in
``<state>/tempest/results.subunit`` and writes ``summary.txt`` beside it.

Only the standard library is imported here: the subunit stream is read by
this same file run with the cloud venv's Python (``summarize``), which has
python-subunit (Tempest depends on it).

Command line (from the source tree)::

    tools/cloud tempest [--regex R] [--concurrency N]   # main()
    python3 -m tools.cloudlib.tempest config
    python3 -m tools.cloudlib.tempest run [--regex R] [--concurrency N]
    python3 -m tools.cloudlib.tempest summarize [SUBUNIT]
"""

import argparse
import configparser
import dataclasses
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from typing import Iterable, Optional, Sequence, TextIO
import urllib.parse

from tools.cloudlib import api

SOURCE_TREE = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
"""The source tree holding ``tools/``."""

DEFAULT_CLOUD_JSON = os.path.join(SOURCE_TREE, ".cloud", "cloud.json")
"""``<source tree>/.cloud/cloud.json``, written by ``tools/cloud up``."""

PLUGIN_NAME = "powerflex_cache_driver"
"""This package's Tempest plugin (``tempest.test_plugins`` entry point)."""

IMAGE_NAME = "tempest-raw-image"
"""Name prefix of the raw image ``[compute] image_ref`` points at."""

IMAGE_BYTES = 2 * 1024 * 1024
"""Size of that image: a few MiB keeps every volume-from-image test quick."""

UPLOAD_DISK_FORMATS = ("qcow2",)
"""``[volume] disk_format``: the formats Tempest's upload-to-image test
uses. Not raw: Cinder sends a raw upload's whole volume (8 GiB here)
through Glance's API into its file store, 200 s on this machine; a qcow2
upload reads the same volume through the same attach path and sends only
its data (about 10 s)."""


@dataclasses.dataclass(frozen=True)
class Exclusion:
    """A test left out of the run (``--exclude-regex``), and why."""

    regex: str
    reason: str


EXCLUSIONS: tuple[Exclusion, ...] = (
    Exclusion(
        r"tempest\.api\.volume\.admin\.test_volume_retype\."
        r"VolumeRetypeWithoutMigrationTest\.test_available_volume_retype",
        "expects os-vol-host-attr:host unchanged by a retype; in an "
        "active/active cluster Cinder records the host of whichever "
        "service of the cluster the scheduler picked for the retype "
        "(volume manager: model_update 'host': host['host']), so the test "
        "fails about half the time whatever the driver. The cluster name "
        "does not change."),
    Exclusion(
        r"cinder_tempest_plugin\.scenario\.test_volume_concurrency\."
        r"ConcurrentVolumeActionsTest\.test_create_backups_and_restores",
        "makes backups but does not check [volume-feature-enabled] backup; "
        "this cloud has no cinder-backup service (nor Swift). The other "
        "concurrency tests (concurrent creates of volumes and snapshots "
        "across the two cinder-volume services) run."),
    Exclusion(
        r"cinder_tempest_plugin\.scenario\.test_snapshots\."
        r"SnapshotDataIntegrityTests",
        "cinder-tempest-plugin's SnapshotDataIntegrityTests needs Nova (it "
        "boots servers to write data) but does not skip without it: its "
        "setUp creates a keypair through Nova's API and errors. This cloud "
        "has no Nova."),
)
"""Tests never run on this cloud. Each carries its reason (the
contributor guide, doc/source/contributor/cloud.rst)."""


@dataclasses.dataclass
class Summary:
    """Counts and details of one Tempest run."""

    passed: int = 0
    skipped: int = 0
    failed: int = 0
    failures: dict[str, str] = dataclasses.field(default_factory=dict)
    """Failed test id -> the last lines of its traceback."""
    skips: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    """Skip reason -> the test ids (or ``setUpClass (class)``) skipped."""
    seconds: float = 0.0
    regex: str = ""
    exclude: str = ""
    concurrency: int = 0
    returncode: Optional[int] = None
    """Exit status of ``tempest run``, when this summary is of a run."""

    @property
    def exit_code(self) -> int:
        """0 when nothing failed and something ran, else 1."""
        if self.failed or (self.passed + self.skipped) == 0:
            return 1
        if self.returncode not in (None, 0):
            return 1
        return 0

    def to_json(self) -> str:
        """The summary as JSON."""
        return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Summary":
        """The summary from :meth:`to_json`."""
        return cls(**json.loads(text))

    def text(self, exclusions: Sequence[Exclusion] = ()) -> str:
        """A human-readable summary (``summary.txt``)."""
        lines = []
        if self.regex:
            lines.append("Tempest run: regex %r, concurrency %s"
                         % (self.regex, self.concurrency))
        if self.seconds:
            lines.append("time: %.0f s" % self.seconds)
        lines.append("passed %d, skipped %d, failed %d"
                     % (self.passed, self.skipped, self.failed))
        if exclusions:
            lines += ["", "Excluded (not run):"]
            for exclusion in exclusions:
                lines.append("  %s" % exclusion.regex)
                lines.append("    %s" % exclusion.reason)
        elif self.exclude:
            lines += ["", "Excluded (not run): %s" % self.exclude]
        if self.failures:
            lines += ["", "Failed (%d):" % len(self.failures)]
            for test_id in sorted(self.failures):
                lines.append("  %s" % test_id)
                for tb_line in self.failures[test_id].splitlines():
                    lines.append("      %s" % tb_line)
        if self.skips:
            lines += ["", "Skipped, by reason:"]
            for reason, tests in sorted(self.skips.items(),
                                        key=lambda item: (-len(item[1]),
                                                          item[0])):
                lines.append("  [%d] %s" % (len(tests), reason))
                for test_id in sorted(tests):
                    lines.append("      %s" % test_id)
        return "\n".join(lines) + "\n"


# -- the cloud description ----------------------------------------------------


def load_cloud(path: str = DEFAULT_CLOUD_JSON) -> dict:
    """Read ``cloud.json``."""
    with open(path, encoding="utf-8") as fobj:
        return json.load(fobj)


def workspace_of(cloud: dict) -> str:
    """The Tempest workspace of a cloud: ``<state_dir>/tempest``."""
    return os.path.join(cloud["state_dir"], "tempest")


def venv_bin(cloud: dict, name: str) -> str:
    """A program of the cloud's venv."""
    return os.path.join(cloud["venv"], "bin", name)


def exclude_regex(exclusions: Iterable[Exclusion] = EXCLUSIONS) -> str:
    """One ``--exclude-regex`` for all exclusions."""
    return "|".join("(?:%s)" % exclusion.regex for exclusion in exclusions)


# -- Keystone and Glance -----------------------------------------------------


def catalog_type(catalog: list, region: str,
                 candidates: Sequence[str] = ("block-storage", "volumev3",
                                              "volume")) -> str:
    """The first of ``candidates`` with a public endpoint in ``region``."""
    for wanted in candidates:
        for service in catalog:
            if service.get("type") != wanted:
                continue
            for endpoint in service.get("endpoints", []):
                if (endpoint.get("interface") == "public" and
                        endpoint.get("region", region) == region):
                    return wanted
    raise RuntimeError("no %s endpoint in region %s in the catalog"
                       % ("/".join(candidates), region))


def image_data(size: int = IMAGE_BYTES) -> bytes:
    """Raw disk data with a deterministic pattern in its first half."""
    out = bytearray()
    counter = 0
    while len(out) < size // 2:
        out.extend(hashlib.sha256(b"tempest/%d" % counter).digest())
        counter += 1
    return bytes(out[:size // 2]) + bytes(size - size // 2)


def ensure_image(admin: api.Session) -> str:
    """Upload the small public raw image once; return its id.

    Named after its content's hash, so an image with other content is
    never taken for it; an image of that name that is not active is
    removed and uploaded again.
    """
    data = image_data()
    name = "%s-%s" % (IMAGE_NAME, hashlib.sha256(data).hexdigest()[:8])
    found = admin.get("glance", "/v2/images?" + urllib.parse.urlencode(
        {"name": name}))
    for image in found.get("images", []):
        if image.get("status") == "active":
            return image["id"]
        admin.call("DELETE", "glance", "/v2/images/%s" % image["id"])
    image_id = admin.upload_image(name, data)
    deadline = time.monotonic() + 60
    while True:
        status = admin.get("glance", "/v2/images/%s" % image_id).get(
            "status")
        if status == "active":
            return image_id
        if status in ("killed", "deleted") or time.monotonic() > deadline:
            raise RuntimeError("image %s ended %s" % (image_id, status))
        time.sleep(0.5)


# -- tempest.conf -------------------------------------------------------------


def render_config(cloud: dict, workspace: str, image_ref: str,
                  volume_catalog_type: str) -> configparser.ConfigParser:
    """The ``tempest.conf`` for ``cloud``, as a ConfigParser.

    Choices that are not Tempest's defaults, and why:

    * ``[volume] volume_size`` and ``volume_size_extend`` are the array
      granularity: Cinder records what the array holds, so a 1 GiB volume
      shows 8 GiB and Tempest's extends (twice the requested size) and
      size checks (requested + 1) would not match;
    * ``volume_revert`` is on: Cinder's PowerFlex driver implements
      ``revert_to_snapshot`` (``overwriteVolumeContent``, gateway API 3.0
      and later, which the simulator serves);
    * manage/unmanage is off: Tempest names the existing volume by a
      ``source-name`` template, the PowerFlex driver wants ``source-id``
      (the array's volume id) and a volume type;
    * ``[volume] disk_format`` is qcow2 only (:data:`UPLOAD_DISK_FORMATS`);
    * cinder-tempest-plugin's concurrency tests are on (concurrent creates
      over the two cinder-volume services of the cluster), its legacy
      consistency-group tests off (they fail in their clean-up against
      Cinder 29's API, whatever the backend; the generic group tests run);
    * ``[enforce_scope] cinder`` is on, as Cinder 29 enforces it;
    * backup is off (no backup service, no Swift), and so is everything
      that needs a server (Nova).
    """
    admin = cloud["admin"]
    gran = int(cloud.get("granularity_gib", 8))
    conf = configparser.ConfigParser(interpolation=None)
    conf.read_dict({
        "DEFAULT": {
            "log_dir": os.path.join(workspace, "logs"),
            "log_file": "tempest.log",
        },
        "oslo_concurrency": {
            "lock_path": os.path.join(workspace, "tempest_lock"),
        },
        "auth": {
            "use_dynamic_credentials": "true",
            "create_isolated_networks": "false",
            "admin_username": admin["username"],
            "admin_password": admin["password"],
            "admin_project_name": admin["project_name"],
            "admin_domain_name": admin["user_domain_name"],
            "admin_user_domain_name": admin["user_domain_name"],
            "admin_project_domain_name": admin["project_domain_name"],
            "default_credentials_domain_name": admin["user_domain_name"],
        },
        "identity": {
            "uri_v3": cloud["keystone_url"],
            "auth_version": "v3",
            "region": cloud.get("region", "RegionOne"),
            "v3_endpoint_type": "public",
        },
        "identity-feature-enabled": {
            "api_v2": "false",
            "api_v2_admin": "false",
            "api_v3": "true",
        },
        "service_available": {
            "cinder": "true",
            "glance": "true",
            "nova": "false",
            "neutron": "false",
            "swift": "false",
            "horizon": "false",
        },
        "compute": {
            "image_ref": image_ref,
            "image_ref_alt": image_ref,
        },
        "image": {
            "container_formats": "bare",
            "disk_formats": "raw,qcow2,vmdk,vhdx,vdi",
        },
        "volume": {
            "catalog_type": volume_catalog_type,
            "backend_names": cloud.get("volume_backend_name", "powerflex"),
            "storage_protocol": cloud.get("storage_protocol", "scaleio"),
            "vendor_name": cloud.get("vendor_name", "Dell EMC"),
            "max_microversion": "latest",
            "volume_size": str(gran),
            "volume_size_extend": str(gran),
            "disk_format": ",".join(UPLOAD_DISK_FORMATS),
            "build_timeout": "300",
        },
        "volume-feature-enabled": {
            "multi_backend": "false",
            "backup": "false",
            "snapshot": "true",
            "clone": "true",
            "manage_volume": "false",
            "manage_snapshot": "false",
            "extend_attached_volume": "false",
            "extend_attached_encrypted_volume": "false",
            "extend_volume_with_snapshot": "true",
            "volume_revert": "true",
            "consistency_group": "false",
            "enable_volume_image_dep_tests": "true",
            "concurrency_tests": "true",
        },
        "enforce_scope": {
            # Cinder 29's policies enforce scope and the new defaults
            # (oslo.policy no longer lets them be turned off): Tempest's
            # RBAC tests then run, and its other tests use reader
            # credentials where the policies call for them.
            "cinder": "true",
        },
        "validation": {
            "run_validation": "false",
        },
        "powerflex_cache": {
            "enabled": "true",
            "granularity_gib": str(gran),
            "snapshot_limit": str(cloud.get("snapshot_limit", 126)),
            "check_image_cache": "true",
        },
    })
    internal = (cloud.get("ids", {}).get("internal_project_id") or
                cloud.get("internal_project_id"))
    if internal:
        conf["powerflex_cache"]["internal_project_id"] = internal
    return conf


def init_workspace(cloud: dict, workspace: str) -> None:
    """``tempest init`` the workspace unless it already is one.

    The workspace registry goes into the state directory, not ``~/.tempest``.
    """
    if os.path.exists(os.path.join(workspace, ".stestr.conf")):
        return
    os.makedirs(os.path.dirname(workspace), exist_ok=True)
    subprocess.run(
        [venv_bin(cloud, "tempest"), "init",
         "--workspace-path",
         os.path.join(cloud["state_dir"], "tempest-workspaces.yaml"),
         "--name", "powerflex-cache-%d" % os.getpid(), workspace],
        check=True, capture_output=True, text=True)


def write_config(cloud: dict, workspace: Optional[str] = None,
                 image_ref: Optional[str] = None) -> str:
    """Make the workspace and write ``etc/tempest.conf``; return its path.

    :param workspace: default ``<state_dir>/tempest``.
    :param image_ref: the image ``[compute] image_ref`` names; by default a
        small raw public image uploaded here (once) with the admin account.
    """
    workspace = workspace or workspace_of(cloud)
    init_workspace(cloud, workspace)
    admin = api.Session(cloud["admin"])
    if image_ref is None:
        image_ref = ensure_image(admin)
    conf = render_config(cloud, workspace, image_ref,
                         catalog_type(admin.catalog(),
                                      cloud.get("region", "RegionOne")))
    path = os.path.join(workspace, "etc", "tempest.conf")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    os.makedirs(os.path.join(workspace, "logs"), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write("# Written by tools/cloudlib/tempest.py for %s; "
                  "rewritten by each 'tools/cloud tempest'.\n"
                  % cloud["keystone_url"])
        conf.write(out)
    return path


# -- running ------------------------------------------------------------------


def plugin_installed(cloud: dict) -> bool:
    """Whether the cloud venv's Tempest lists this package's plugin."""
    proc = subprocess.run([venv_bin(cloud, "tempest"), "list-plugins"],
                          capture_output=True, text=True, check=False)
    return PLUGIN_NAME in proc.stdout


def _next_stream(workspace: str) -> int:
    try:
        with open(os.path.join(workspace, ".stestr", "next-stream")) as fobj:
            return int(fobj.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def _tee(proc: subprocess.Popen, log: TextIO, echo: bool) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        log.write(line)
        if echo:
            sys.stdout.write(line)
            sys.stdout.flush()


def _exclusions(exclude: Optional[Sequence[Exclusion] | str]
                ) -> tuple[Sequence[Exclusion], str]:
    """The exclusions to list and the ``--exclude-regex`` to pass."""
    if isinstance(exclude, str):
        return (), exclude
    exclusions = EXCLUSIONS if exclude is None else exclude
    return exclusions, exclude_regex(exclusions)


def run(cloud: dict, regex: str = "volume",
        exclude: Optional[Sequence[Exclusion] | str] = None,
        concurrency: int = 2, workspace: Optional[str] = None,
        echo: bool = True) -> Summary:
    """Run Tempest; keep ``results.subunit``; write ``summary.txt``.

    :param exclude: exclusions (default :data:`EXCLUSIONS`) or one regex.
    :param echo: copy Tempest's output to standard output as it runs (it
        always goes to ``<workspace>/run.log``).
    """
    workspace = workspace or workspace_of(cloud)
    exclusions, exclude_re = _exclusions(exclude)
    conf_path = write_config(cloud, workspace)
    if not plugin_installed(cloud):
        print("warning: Tempest in %s does not list the %s plugin; "
              "reinstall this package there (pip install -e .) so its "
              "tempest.test_plugins entry point is registered."
              % (cloud["venv"], PLUGIN_NAME), file=sys.stderr)
    argv = [venv_bin(cloud, "tempest"), "run", "--config-file", conf_path,
            "--concurrency", str(concurrency), "--regex", regex]
    if exclude_re:
        argv += ["--exclude-regex", exclude_re]
    before = _next_stream(workspace)
    started = time.monotonic()
    # The plugin's tests come from this source tree, not from the copy
    # installed in the venv (which may be older); the cloud's services
    # are other processes and keep the installed driver.
    env = dict(os.environ, PYTHONWARNINGS="ignore",
               PYTHONPATH=os.pathsep.join(
                   [SOURCE_TREE] + ([os.environ["PYTHONPATH"]]
                                    if os.environ.get("PYTHONPATH")
                                    else [])))
    with open(os.path.join(workspace, "run.log"), "w",
              encoding="utf-8") as log:
        log.write("$ %s\n" % " ".join(argv))
        proc = subprocess.Popen(argv, cwd=workspace, env=env, text=True,
                                stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        _tee(proc, log, echo)
        returncode = proc.wait()
    seconds = time.monotonic() - started
    subunit_path = os.path.join(workspace, "results.subunit")
    summary = Summary()
    if not os.path.isdir(workspace):
        print("error: %s disappeared during the run (the cloud was taken "
              "down?)" % workspace, file=sys.stderr)
        summary.returncode = returncode
        return summary
    if _next_stream(workspace) > before:
        with open(subunit_path, "wb") as out:
            subprocess.run([venv_bin(cloud, "stestr"), "last", "--subunit"],
                           cwd=workspace, stdout=out, check=False)
        summary = summarize(subunit_path, python=venv_bin(cloud, "python"))
    elif os.path.exists(subunit_path):
        # Tempest stopped before running anything (a configuration or
        # discovery error: see run.log).
        os.unlink(subunit_path)
    summary.seconds = seconds
    summary.regex = regex
    summary.exclude = exclude_re
    summary.concurrency = concurrency
    summary.returncode = returncode
    with open(os.path.join(workspace, "summary.txt"), "w",
              encoding="utf-8") as out:
        out.write(summary.text(exclusions))
    return summary


# -- reading the subunit stream -----------------------------------------------

_ATTRS = re.compile(r"\[[^\]]*\]$")

_CLASS_IN_REASON = re.compile(r"^\w+ skipped as")
"""Tempest's "<class> skipped as Nova is not available": one group."""


def _test_id(raw_id: str) -> str:
    """A test id without Tempest's ``[id-...,smoke]`` attributes."""
    return _ATTRS.sub("", raw_id)


def _detail_text(details: dict, name: str) -> str:
    content = details.get(name)
    if content is None:
        return ""
    try:
        return content.as_text()
    except Exception:
        return b"".join(content.iter_bytes()).decode(errors="replace")


def _summarize_here(subunit_path: str) -> Summary:
    """Read a subunit v2 stream (needs python-subunit and testtools)."""
    import subunit
    import testtools

    summary = Summary()
    results: dict[str, tuple[str, dict]] = {}

    def collect(test: dict) -> None:
        if test["status"] in ("exists", "inprogress", None):
            return
        results[_test_id(test["id"])] = (test["status"], test["details"])

    with open(subunit_path, "rb") as stream:
        case = subunit.ByteStreamToStreamResult(stream,
                                                non_subunit_name="stdout")
        result = testtools.StreamToDict(collect)
        result.startTestRun()
        try:
            case.run(result)
        finally:
            result.stopTestRun()
    for test_id, (status, details) in results.items():
        if status in ("success", "xfail"):
            summary.passed += 1
        elif status == "skip":
            summary.skipped += 1
            reason = _CLASS_IN_REASON.sub(
                "<class> skipped as",
                _detail_text(details, "reason").strip() or
                "(no reason given)")
            summary.skips.setdefault(reason, []).append(test_id)
        else:
            summary.failed += 1
            lines = [line for line in _detail_text(
                details, "traceback").strip().splitlines()
                if line.strip(" ^~")]
            summary.failures[test_id] = "\n".join(lines[-2:]) or status
    return summary


def summarize(subunit_path: str, python: Optional[str] = None) -> Summary:
    """Count passes, skips and failures of a subunit stream.

    Read in this interpreter when it has python-subunit, else by ``python``
    (the cloud venv's) running this file.
    """
    try:
        import subunit  # noqa: F401
    except ImportError:
        if python is None:
            raise
        # As a module from the source tree, so that sys.path[0] is not
        # this directory (whose tempest.py would shadow Tempest).
        proc = subprocess.run(
            [python, "-m", "tools.cloudlib.tempest", "summarize", "--json",
             os.path.abspath(subunit_path)], cwd=SOURCE_TREE,
            capture_output=True, text=True, check=False)
        if not proc.stdout.strip():
            raise RuntimeError("could not read %s: %s"
                               % (subunit_path, proc.stderr.strip()))
        return Summary.from_json(proc.stdout)
    return _summarize_here(subunit_path)


# -- command line -------------------------------------------------------------


def main(cloud: dict, regex: str = "volume", concurrency: int = 2,
         exclude: Optional[Sequence[Exclusion] | str] = None) -> int:
    """Run Tempest against ``cloud`` and print the summary.

    What ``tools/cloud tempest`` runs. Returns the exit status: 0, or 1
    when a test failed or none ran.
    """
    summary = run(cloud, regex=regex, exclude=exclude,
                  concurrency=concurrency)
    path = os.path.join(workspace_of(cloud), "summary.txt")
    print("\n" + summary.text(_exclusions(exclude)[0]), end="")
    print("passed %d, skipped %d, failed %d in %.0f s; details in %s, "
          "Tempest's output in %s"
          % (summary.passed, summary.skipped, summary.failed,
             summary.seconds, path,
             os.path.join(workspace_of(cloud), "run.log")))
    return summary.exit_code


def cli(argv: Optional[Sequence[str]] = None) -> int:
    """``config``, ``run`` or ``summarize``; see the module docstring."""
    parser = argparse.ArgumentParser(prog="tools.cloudlib.tempest")
    parser.add_argument("--cloud", default=DEFAULT_CLOUD_JSON,
                        help="cloud.json (default %(default)s)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("config", help="write etc/tempest.conf")
    run_p = sub.add_parser("run", help="run Tempest")
    run_p.add_argument("--regex", default="volume")
    run_p.add_argument("--exclude-regex", default=None,
                       help="instead of the built-in exclusions")
    run_p.add_argument("--concurrency", type=int, default=2)
    sum_p = sub.add_parser("summarize", help="summarize a subunit stream")
    sum_p.add_argument("subunit", nargs="?", default=None)
    sum_p.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    if args.command == "summarize":
        path = args.subunit
        python = None
        if path is None:
            cloud = load_cloud(args.cloud)
            path = os.path.join(workspace_of(cloud), "results.subunit")
            python = venv_bin(cloud, "python")
        summary = summarize(path, python=python)
        print(summary.to_json() if args.json else summary.text(), end="")
        return summary.exit_code
    cloud = load_cloud(args.cloud)
    if args.command == "config":
        print(write_config(cloud))
        return 0
    return main(cloud, regex=args.regex, concurrency=args.concurrency,
                exclude=args.exclude_regex)


if __name__ == "__main__":
    sys.exit(cli())
