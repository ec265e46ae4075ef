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
"""The fault-control endpoint of a simulator in another process."""

import threading
import time

import requests

from tests.unit.simulator import base

FAULTS = "/simulator/faults"


class TestControl(base.SimulatorTestCase):

    def _control(self, method: str, body=None,
                 auth=("admin", base.PASSWORD)) -> requests.Response:
        return requests.request(method, self.sim.url + FAULTS, json=body,
                                auth=auth, timeout=10,
                                verify=self.sim.ca_cert_path)

    def test_needs_the_gateway_credentials(self):
        for auth in (None, ("admin", "wrong"), ("other", base.PASSWORD)):
            r = self._control("POST", [{"op": "createVolume",
                                        "kind": "drop"}], auth=auth)
            self.assertEqual(401, r.status_code, auth)
        self.assertEqual({}, self.sim.faults.armed())

    def test_a_token_is_not_enough(self):
        self.client.login()
        r = self._control("GET", auth=("admin", self.client.token))
        self.assertEqual(401, r.status_code)

    def test_arm_list_and_clear(self):
        r = self._control("POST", [
            {"op": "removeMappedSdc", "kind": "delay", "seconds": 5},
            {"op": "removeMappedSdc", "kind": "drop"},
            {"op": "createVolume", "kind": "drop", "after": True,
             "times": 2}])
        self.assertEqual(200, r.status_code, r.text)
        self.assertEqual({"armed": {"removeMappedSdc": 2,
                                    "createVolume": 1}}, r.json())
        self.assertEqual(r.json(), self._control("GET").json())
        self.assertEqual(200, self._control("DELETE").status_code)
        self.assertEqual({"armed": {}}, self._control("GET").json())

    def test_a_bad_rule_arms_none(self):
        for rules in ([], {"op": "x"}, [{"kind": "drop"}],
                      [{"op": "x", "kind": "explode"}],
                      [{"op": "x", "kind": "delay"}],
                      [{"op": "x", "kind": "delay", "seconds": -1}],
                      [{"op": "x", "kind": "drop", "times": 0}],
                      [{"op": "x", "kind": "drop"}, {"op": "y"}]):
            r = self._control("POST", rules)
            self.assertEqual(400, r.status_code, rules)
        self.assertEqual({}, self.sim.faults.armed())

    def test_unknown_control_path(self):
        r = requests.get(self.sim.url + "/simulator/nothing",
                         auth=("admin", base.PASSWORD), timeout=10,
                         verify=self.sim.ca_cert_path)
        self.assertEqual(404, r.status_code)

    def test_hold_then_drop_without_acting(self):
        """A delay and a drop together: held, then closed, array unchanged.

        The rule leaves the table when the request arrives, which is how a
        test learns the request is being held.
        """
        self._control("POST", [
            {"op": "createVolume", "kind": "delay", "seconds": 1.5},
            {"op": "createVolume", "kind": "drop"}])
        self.client.login()
        outcome = {}

        def create():
            try:
                outcome["answer"] = self.client.create_volume("held", 8)
            except requests.ConnectionError as exc:
                outcome["error"] = exc
        sender = threading.Thread(target=create)
        sender.start()
        deadline = time.monotonic() + 5
        while (self._control("GET").json()["armed"] and
               time.monotonic() < deadline):
            time.sleep(0.05)
        self.assertEqual({}, self.sim.faults.armed())
        self.assertTrue(sender.is_alive(), "the request was not held")
        sender.join(10)
        self.assertNotIn("answer", outcome)
        self.assertIn("error", outcome)
        self.assertEqual({}, self.sim.array.volumes)
