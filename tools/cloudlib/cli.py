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
"""The ``tools/cloud`` command line."""

import argparse
import sys
from typing import Optional, Sequence

from tools.cloudlib import cloud
from tools.cloudlib import layout


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``tools/cloud``."""
    parser = argparse.ArgumentParser(
        prog="tools/cloud",
        description="A one-machine OpenStack cloud (Keystone, Glance, "
                    "Cinder with two cinder-volume services in a cluster) "
                    "on a simulated PowerFlex array, under .cloud/.")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start the cloud")
    up.add_argument("--driver", choices=sorted(layout.DRIVERS),
                    default="ours",
                    help="ours (this package) or stock (Cinder's "
                         "PowerFlexDriver); default: ours")
    commands.add_parser("down", help="stop the cloud and remove .cloud/")
    commands.add_parser("status", help="say what runs")
    tempest = commands.add_parser(
        "tempest", help="run Tempest's volume tests, cinder-tempest-plugin "
                        "and this package's plugin against the cloud")
    tempest.add_argument("--regex", default="volume",
                         help="tests to run (default: volume)")
    tempest.add_argument("--concurrency", type=int, default=2)
    commands.add_parser(
        "seed", help="the seed scenario with the openstack client: sizes "
                     "and quota usage at each step")
    commands.add_parser(
        "active-active", help="50 concurrent creates from one new image "
                              "over both cinder-volume services")
    commands.add_parser(
        "crash-rotation", help="kill -9 a cinder-volume service in the "
                               "middle of a cache entry rotation, restart "
                               "it, check Cinder's clean-up and what is "
                               "left")
    commands.add_parser(
        "crash-cache-miss", help="kill -9 a cinder-volume service in the "
                                 "middle of a cache miss's image copy, "
                                 "restart it, retry once, check what is "
                                 "left")
    commands.add_parser(
        "crash-cross-pool", help="kill a cinder-volume service in the "
                                 "middle of a copy across storage pools "
                                 "(SIGTERM, then SIGKILL), restart it, "
                                 "retry once, check what is left; the "
                                 "services serve two pools for the run")
    commands.add_parser(
        "cinder-store", help="a volume uploaded to a cinder:// image, a "
                             "volume cloned from it, and the attacks on "
                             "other projects' image volumes; the "
                             "services restarted with "
                             "image_upload_use_cinder_backend for the run")
    switch = commands.add_parser(
        "switch-driver", help="restart both cinder-volume services with "
                              "the other driver (database, array, images "
                              "and service names kept)")
    switch.add_argument("driver", choices=sorted(layout.DRIVERS))
    switch.add_argument("--reinstall", action="store_true",
                        help="first reinstall this package from the "
                             "checkout into the services' virtualenv, as "
                             "`up` does")
    over = commands.add_parser(
        "switch-over", help="volumes made by Cinder's driver, then this "
                            "package's driver on them, and "
                            "powerflex-cache-manage volumes reconcile")
    over.add_argument("--reinstall", action="store_true",
                      help="reinstall this package into the services' "
                           "virtualenv at the first switch")
    storm = commands.add_parser(
        "storm", help="many concurrent creates from one new image over "
                      "both cinder-volume services: times, failures, "
                      "downloads, rotations, array calls, host writes, "
                      "memory; every volume's bytes checked")
    storm.add_argument("--count", type=int, default=100,
                       help="creates fired at once (default: 100)")
    storm.add_argument("--image-size", type=int, default=1, metavar="GIB",
                       help="size of the new raw image and of each "
                            "volume, GiB (default: 1)")
    storm.add_argument("--json", metavar="PATH",
                       help="also write the figures to this JSON file")
    storm.add_argument("--timeout", type=float, metavar="SECONDS",
                       help="give up waiting for the creates after this "
                            "(default: 600 + 6 per create)")
    commands.add_parser(
        "scan-logs", help="look for passwords and tokens in every log of "
                          "the cloud; exit 1 on any")
    recount = commands.add_parser(
        "recount", help="time the stats report's recount of the pools on "
                        "a scratch Cinder database of a cloud's size (the "
                        "cloud's MariaDB when it is up, else one of its "
                        "own)")
    recount.add_argument("--volumes", type=int, default=100000,
                         help="volume rows (default: 100000)")
    recount.add_argument("--pools", type=int, default=20,
                         help="pools (default: 20)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run a command; return the exit status."""
    args = build_parser().parse_args(argv)
    the_cloud = cloud.Cloud()
    try:
        if args.command == "up":
            return the_cloud.up(args.driver)
        if args.command == "down":
            return the_cloud.down()
        if args.command == "status":
            return the_cloud.status()
        if args.command == "recount":
            from tools.cloudlib import recount
            return recount.main(["--volumes", str(args.volumes),
                                 "--pools", str(args.pools)])
        description = the_cloud.layout.read_description()
        if args.command == "switch-driver":
            from tools.cloudlib import switch
            return switch.main(args.driver, reinstall=args.reinstall)
        if args.command == "switch-over":
            from tools.cloudlib import switch_over
            return switch_over.main(description, reinstall=args.reinstall)
        if args.command == "tempest":
            from tools.cloudlib import tempest
            return tempest.main(description, regex=args.regex,
                                concurrency=args.concurrency)
        if args.command == "seed":
            from tools.cloudlib import seed
            return seed.main(description)
        if args.command == "storm":
            from tools.cloudlib import storm
            return storm.main(description, count=args.count,
                              image_gib=args.image_size,
                              json_path=args.json, timeout=args.timeout)
        if args.command == "scan-logs":
            from tools.cloudlib import log_scan
            return log_scan.main(description)
        if args.command == "crash-rotation":
            from tools.cloudlib import crash_rotation
            return crash_rotation.main(description)
        if args.command == "crash-cross-pool":
            from tools.cloudlib import crash_cross_pool
            return crash_cross_pool.main(description)
        if args.command == "cinder-store":
            from tools.cloudlib import cinder_store
            return cinder_store.main(description)
        if args.command == "crash-cache-miss":
            from tools.cloudlib import crash_cache_miss
            return crash_cache_miss.main(description)
        from tools.cloudlib import active_active
        return active_active.main(description)
    except FileNotFoundError as exc:
        print("tools/cloud %s: the cloud is not up (%s); run `tools/cloud "
              "up` first" % (args.command, exc.filename), file=sys.stderr)
        return 2
    except cloud.CloudError as exc:
        print("tools/cloud %s: %s" % (args.command, exc), file=sys.stderr)
        return 1
