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
"""Command line: run the gateway simulator until SIGINT or SIGTERM.

``python -m powerflex_cache_driver.simulator --port 8443 --workdir DIR``
(or the ``main`` console entry point) prints the URL, the CA certificate
path and the path of a cinder.conf backend section holding the credentials
(the password itself is never printed).
"""

import argparse
import logging
import signal
import sys
import tempfile
import threading
from typing import Any, Optional, Sequence

from powerflex_cache_driver.simulator import gateway


def build_parser() -> argparse.ArgumentParser:
    """Return the command line parser."""
    parser = argparse.ArgumentParser(
        prog="powerflex-gateway-simulator",
        description="Serve a simulated Dell PowerFlex gateway over HTTPS.")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8443,
                        help="port to bind, 0 for any (default 8443)")
    parser.add_argument("--workdir", default=None,
                        help="state directory (default: a new temp dir)")
    parser.add_argument("--gen-type", default="Mirroring",
                        choices=("Mirroring", "EC"),
                        help="PowerFlex generation (EC = PowerFlex 5)")
    parser.add_argument("--version", dest="api_version", default=None,
                        help="gateway version (default 4.5, or 5.0 for EC)")
    parser.add_argument("--username", default=gateway.DEFAULT_USERNAME)
    parser.add_argument("--protection-domain", default="PD1")
    parser.add_argument("--pool", action="append", dest="pools",
                        help="storage pool name (repeatable; default SP1 "
                             "and SP2)")
    parser.add_argument("--sdc-guid", action="append", dest="sdc_guids",
                        help="SDC GUID (repeatable)")
    parser.add_argument("--nvme-host-nqn", action="append", default=[],
                        dest="nqns", help="NVMe host NQN (repeatable)")
    parser.add_argument("--snapshot-limit", type=int, default=None)
    parser.add_argument("--strict-size", action="store_true", default=True,
                        help="refuse (rc 225) setVolumeSize sizes that are "
                             "not a multiple of the granularity, as the "
                             "array does (the default)")
    parser.add_argument("--round-size", action="store_false",
                        dest="strict_size",
                        help="round such sizes up instead of refusing them")
    parser.add_argument("--removal-seconds", type=float, default=None,
                        metavar="S",
                        help="keep removed volumes in deletion S seconds "
                             "(rc 212, name still taken, "
                             "numOfVolumesInDeletion), as a real array")
    parser.add_argument("--json-401", action="store_true",
                        help="answer 401s with a JSON body (a real gateway "
                             "answers a non-JSON error page)")
    parser.add_argument("--loop-devices", action="store_true",
                        help="publish mapped volumes as loop devices over "
                             "their backing files (root; falls back to the "
                             "files where refused)")
    parser.add_argument("--by-id-dir", default=None, metavar="DIR",
                        help="put the emc-vol-<systemId>-<volumeId> links "
                             "of mapped volumes in DIR (e.g. "
                             "/dev/disk/by-id, where os-brick looks; "
                             "created if missing) instead of WORKDIR/by-id; "
                             "removed on stop with the directories created "
                             "for them")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="log every request (never credentials)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console entry point: serve until SIGINT/SIGTERM; return 0."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    workdir = args.workdir or tempfile.mkdtemp(prefix="powerflex-sim-")
    sim = gateway.GatewaySimulator(
        workdir, gen_type=args.gen_type, version=args.api_version,
        username=args.username, protection_domain=args.protection_domain,
        pools=tuple(args.pools or ("SP1", "SP2")),
        sdc_guids=tuple(args.sdc_guids or (gateway.DEFAULT_SDC_GUID,)),
        nvme_host_nqns=tuple(args.nqns),
        snapshot_limit=args.snapshot_limit, strict_size=args.strict_size,
        host=args.host, port=args.port, loop_devices=args.loop_devices,
        by_id_dir=args.by_id_dir, removal_seconds=args.removal_seconds,
        json_401=args.json_401)
    stop = threading.Event()

    def _on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    sim.start()
    config = sim.write_backend_config()
    out = sys.stdout
    out.write("PowerFlex gateway simulator (%s, version %s)\n"
              % (sim.array.gen_type, sim.array.version))
    out.write("URL:         %s/api\n" % sim.url)
    out.write("CA cert:     %s\n" % sim.ca_cert_path)
    out.write("System id:   %s\n" % sim.system_id)
    out.write("SDCs:        %s\n" % ", ".join(
        "%s=%s" % item for item in sim.sdc_ids.items()))
    out.write("by-id dir:   %s%s\n" % (
        sim.by_id_dir, " (loop devices)" if args.loop_devices else ""))
    out.write("Credentials: user %r; password and a ready cinder.conf "
              "backend section in %s (mode 0600)\n" % (sim.username, config))
    out.write("Stop with Ctrl-C or SIGTERM.\n")
    out.flush()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        sim.stop()
    return 0
