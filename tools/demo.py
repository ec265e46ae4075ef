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
"""See it work: stock Cinder and this driver on the seed flow.

Usage (as root, from the source checkout; ``tox -e demo`` runs it)::

    python -m tools.demo

Starts the PowerFlex gateway simulator on loopback and runs Cinder's real
create-volume flow with the image-volume cache (see
:mod:`tools.demo_scenario`), once with Cinder's ``PowerFlexDriver`` and
once with ``PowerFlexCacheDriver``, then prints where every volume came
from, why it was (not) extended, and both drivers side by side. Exits 0
when both runs completed, 1 when a run failed, 2 when something the demo
needs is missing.
"""

import argparse
import sys
import time
from typing import Optional, Sequence

from tools import preflight

COMMAND = "python -m tools.demo"


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the demo; return the exit status."""
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split(
        "\n\n")[0])
    parser.parse_args(argv)
    preflight.require(COMMAND)
    preflight.quiet_library_warnings()
    preflight.green_start()
    from tools import demo_report
    from tools import demo_scenario
    from tools import harness

    started = time.perf_counter()
    print("Cinder %s create-volume flow + image-volume cache against the "
          "PowerFlex gateway simulator (Mirroring, 8 GiB granularity); "
          "drivers: %s" % (preflight.cinder_version(),
                           ", ".join("%s = %s" % item
                                     for item in harness.DRIVERS.items())))
    runs = []
    for driver in harness.DRIVERS:
        try:
            runs.append(harness.run_scenario(driver, demo_scenario.run))
        except harness.ScenarioError as exc:
            print("%s: %s" % (COMMAND, exc), file=sys.stderr)
            return 1
        print("  %s driver: done at %.1f s (%s)" % (
            driver, time.perf_counter() - started, runs[-1].gateway))
    print("Images (made with qemu-img):")
    for line in runs[0].images:
        print("  " + line)
    print()
    print(demo_report.volumes(runs))
    print(demo_report.summary(runs))
    print()
    print("Clean-up: each run's simulator stopped, its work directory "
          "removed. Total %.1f s." % (time.perf_counter() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
