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
"""Fault injection and the request log."""

import json
import logging
import time

import fixtures
import requests
import testtools

from powerflex_cache_driver.simulator import calllog
from powerflex_cache_driver.simulator import faults
from tests.unit.simulator import base


class TestFaults(base.SimulatorTestCase):

    def test_fail_once_with_a_code(self):
        self.sim.faults.fail("createVolume", 190, message="too large")
        r = self.client.create_volume("v", 8)
        self.assertEqual({"message": "too large", "httpStatusCode": 500,
                          "errorCode": 190}, r.json())
        self.assertEqual({}, self.sim.array.volumes)
        self.assertEqual(200, self.client.create_volume("v", 8).status_code)

    def test_fail_with_details_rc(self):
        vid = self.client.new_volume("v")
        self.sim.faults.fail("snapshotVolumes", 0, details_rc=182, times=2)
        for _unused in range(2):
            r = self.client.snapshot(vid, "s")
            self.assertEqual(500, r.status_code)
            self.assertEqual(182, r.json()["details"][0]["rc"])
            self.assertEqual("Error with details", r.json()["message"])
        self.assertEqual(200, self.client.snapshot(vid, "s").status_code)

    def test_fail_forever_until_clear(self):
        self.sim.faults.fail("version", 0, http_status=503, times=None)
        for _unused in range(3):
            self.assertEqual(503, self.client.get("/api/version").status_code)
        self.assertEqual(1, self.sim.faults.pending("version"))
        self.sim.faults.clear()
        self.assertEqual(0, self.sim.faults.pending())
        self.assertEqual(200, self.client.get("/api/version").status_code)

    def test_fail_login(self):
        self.sim.faults.fail("login", 0, http_status=500)
        self.assertEqual(500, self.client.login().status_code)
        self.assertEqual(200, self.client.login().status_code)

    def test_fault_needs_a_valid_token_first(self):
        self.sim.faults.fail("version", 7)
        self.sim.faults.invalidate_tokens()
        self.assertEqual(401, self.client.get("/api/version").status_code)
        self.client.login()
        self.assertEqual(7, self.client.get("/api/version").json()[
            "errorCode"])

    def test_delay_and_read_timeout(self):
        self.sim.faults.delay("getVolume", 0.3, times=2)
        vid = self.client.new_volume("v")
        start = time.monotonic()
        self.client.volume(vid)
        self.assertGreaterEqual(time.monotonic() - start, 0.3)
        self.assertRaises(requests.exceptions.ReadTimeout, self.client.get,
                          "/api/instances/Volume::" + vid, timeout=(5, 0.1))
        start = time.monotonic()
        self.client.volume(vid)
        self.assertLess(time.monotonic() - start, 0.25)

    def test_delayed_operation_still_runs(self):
        self.sim.faults.delay("createVolume", 0.3, times=1)
        self.assertRaises(requests.exceptions.ReadTimeout, self.client.post,
                          "/api/types/Volume/instances",
                          {"storagePoolId": self.sim.pool_ids["SP1"],
                           "name": "v", "volumeSizeInKb": "8388608"},
                          timeout=(5, 0.05))
        deadline = time.monotonic() + 5
        while not self.sim.array.volumes and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertIsNotNone(self.sim.array.volume_by_name("v"))

    def test_drop_closes_without_answer(self):
        self.sim.faults.drop("createVolume")
        self.assertRaises(requests.exceptions.ConnectionError,
                          self.client.create_volume, "v", 8)
        self.assertEqual({}, self.sim.array.volumes)
        self.assertEqual(200, self.client.create_volume("v", 8).status_code)
        dropped = self.sim.calls_of("createVolume")[0]
        self.assertIsNone(dropped.status)

    def test_drop_after_runs_the_operation(self):
        vid = self.client.new_volume("v")
        self.sim.faults.drop("removeVolume", after=True)
        self.assertRaises(requests.exceptions.ConnectionError,
                          self.client.action, vid, "removeVolume",
                          {"removeMode": "ONLY_ME"})
        self.assertEqual({}, self.sim.array.volumes)
        r = self.client.action(vid, "removeVolume",
                               {"removeMode": "ONLY_ME"})
        self.assertError(r, 500, 79)

    def test_latency_table(self):
        sim = self.start_sim(latency={"version": 0.2})
        client = self.make_client(sim)
        start = time.monotonic()
        client.get("/api/version")
        self.assertGreaterEqual(time.monotonic() - start, 0.2)
        self.assertEqual({"version": 0.2}, sim.faults.latency)
        sim.faults.clear()
        self.assertEqual({"version": 0.2}, sim.faults.latency)

    def test_times_must_be_positive(self):
        self.assertRaises(ValueError, self.sim.faults.drop, "x", times=0)


class TestPlan(testtools.TestCase):

    def test_rules_combine_and_expire(self):
        injector = faults.FaultInjector(latency={"a": 1.0})
        injector.delay("a", 0.5, times=1)
        injector.fail("a", 42, times=1)
        injector.drop("a", times=1, after=True)
        plan = injector.plan("a")
        self.assertEqual(1.5, plan.delay)
        self.assertTrue(plan.drop_after)
        self.assertFalse(plan.drop_before)
        self.assertEqual(42, injector.take_error("a").error_code)
        self.assertIsNone(injector.take_error("a"))
        self.assertEqual(faults.Plan(delay=1.0), injector.plan("a"))
        self.assertEqual(faults.Plan(), injector.plan("b"))
        self.assertEqual(0, injector.pending())


class TestRequestLog(base.SimulatorTestCase):

    def test_records(self):
        self.sim.reset_calls()
        vid = self.client.new_volume("v", 8)
        self.client.action(vid, "setVolumeSize", {"sizeInGB": "16"})
        self.client.action(vid, "setVolumeSize", {"sizeInGB": "24"})
        self.client.get("/api/instances/Volume::" + vid)
        counts = self.sim.counts()
        self.assertEqual(2, counts["setVolumeSize"])
        self.assertEqual(1, counts["createVolume"])
        extends = self.sim.calls_of("setVolumeSize")
        self.assertEqual(
            [(vid, {"sizeInGB": "16"}), (vid, {"sizeInGB": "24"})],
            [(c.volume_id, c.body) for c in extends])
        call = extends[0]
        self.assertEqual("POST", call.method)
        self.assertEqual("/api/instances/Volume::%s/action/setVolumeSize"
                         % vid, call.path)
        self.assertEqual(200, call.status)
        self.assertIsInstance(call.timestamp, float)
        created = self.sim.calls_of("createVolume")[0]
        self.assertEqual({"id": vid}, created.response)
        self.assertIsNone(created.volume_id)
        self.assertEqual(vid, self.sim.calls_of("getVolume")[0].volume_id)
        self.sim.reset_calls()
        self.assertEqual([], self.sim.calls)

    def test_raw_path_is_recorded(self):
        self.client.get("/api/types/Volume/instances/getByName::a%252Fb")
        call = self.sim.calls_of("getVolumeByName")[0]
        self.assertEqual("/api/types/Volume/instances/getByName::a%252Fb",
                         call.path)
        self.client.get("/api/nothing")
        self.assertEqual(404, self.sim.calls_of("unknown")[0].status)

    def test_no_password_or_token_anywhere(self):
        logs = self.useFixture(fixtures.FakeLogger(
            name="powerflex_cache_driver.simulator", level=logging.DEBUG))
        tokens = [self.client.token]
        tokens.append(self.make_client(self.sim).token)
        self.client.login(password="wrong")
        vid = self.client.new_volume("v")
        self.client.get("/api/instances/Volume::" + vid)
        self.client.post("/api/types/Volume/instances",
                         {"name": "x", "password": base.PASSWORD,
                          "storagePoolId": "nope",
                          "volumeSizeInKb": "1"})
        self.client.get("/api/logout")
        self.assertIn("/api/login", logs.output)
        dump = json.dumps([vars(c) for c in self.sim.calls]) + repr(
            self.sim.calls) + repr(self.sim) + logs.output
        self.assertNotIn(base.PASSWORD, dump)
        self.assertNotIn("wrong", dump)
        for token in tokens:
            self.assertNotIn(token, dump)
        self.assertNotIn("Basic ", dump)
        self.assertIn(calllog.REDACTED, dump)

    def test_redact(self):
        self.assertEqual(
            {"a": [{"Password": "***", "x": 1}], "authToken": "***"},
            calllog.redact({"a": [{"Password": "p", "x": 1}],
                            "authToken": "t"}))
