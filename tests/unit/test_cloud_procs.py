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
"""tools/cloudlib/procs.py: start, stop, pid files, waits (real processes)."""

import os
import signal
import socket
import sys
import time

import fixtures
import testtools

from tools.cloudlib import procs

# A child that ignores SIGTERM, starts a grandchild that ignores it too,
# prints the grandchild's pid and sleeps.
STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "time.sleep(60)"])
print("grandchild", child.pid, flush=True)
time.sleep(60)
"""

# An HTTP server on the port given: 404 for /missing, 503 for the rest.
HTTP_SERVER = """
import http.server, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(404 if self.path == "/missing" else 503)
        self.end_headers()
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])),
                       Handler).serve_forever()
"""


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (zombies do not)."""
    stat = procs._proc_stat(pid)
    return stat is not None and stat[0] != "Z"


class ProcessTableTest(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.state = self.useFixture(fixtures.TempDir()).path
        self.table = procs.ProcessTable(self.state)
        self.addCleanup(self.table.stop_all, 1.0)

    def test_start_logs_and_records_then_stop(self):
        pid = self.table.start("talker", [
            sys.executable, "-c",
            "import sys, time; print('hello'); "
            "print('oops', file=sys.stderr, flush=True); time.sleep(60)"])
        self.assertEqual({"talker": pid}, self.table.running())
        self.assertTrue(os.path.exists(
            os.path.join(self.state, "run", "talker.pid")))
        self.assertEqual(os.getpgid(pid), pid)
        self.assertNotEqual(os.getsid(pid), os.getsid(0))
        procs.wait_until(lambda: "oops" in self.table.tail("talker"), 5,
                         "output")
        tail = self.table.tail("talker")
        self.assertIn("hello", tail)
        self.assertIn("start talker", tail)
        self.assertEqual(os.path.join(self.state, "log", "talker.log"),
                         self.table.log_path("talker"))

        self.assertTrue(self.table.stop("talker", timeout=5))
        self.assertFalse(_alive(pid))
        self.assertEqual({}, self.table.running())
        self.assertFalse(os.path.exists(self.table.pid_path("talker")))
        # Stopping what is not running is harmless.
        self.assertFalse(self.table.stop("talker"))
        self.assertFalse(self.table.stop("never-started"))

    def test_env_and_cwd(self):
        self.table.start("env", [
            sys.executable, "-c",
            "import os; print(os.environ['CLOUD_TEST'], os.getcwd())"],
            env={"CLOUD_TEST": "value"}, cwd=self.state)
        procs.wait_until(lambda: not self.table.is_running("env"), 5, "exit")
        self.assertIn(f"value {self.state}", self.table.tail("env"))

    def test_refuses_to_start_twice(self):
        pid = self.table.start("sleeper", ["sleep", "60"])
        error = self.assertRaises(procs.CloudError, self.table.start,
                                  "sleeper", ["sleep", "60"])
        self.assertIn("sleeper is already running", str(error))
        self.assertIn(str(pid), str(error))
        self.assertEqual({"sleeper": pid}, self.table.running())

    def test_missing_program(self):
        error = self.assertRaises(procs.CloudError, self.table.start,
                                  "ghost", ["/nonexistent/program"])
        self.assertIn("cannot start ghost", str(error))
        self.assertEqual({}, self.table.running())

    def test_invalid_name(self):
        self.assertRaises(procs.CloudError, self.table.start, "../x",
                          ["sleep", "1"])

    def test_stale_pid_files(self):
        # A process that ended, and a pid reused by another process.
        pid = self.table.start("short", ["true"])
        procs.wait_until(lambda: not self.table.is_running("short"), 5,
                         "exit")
        with open(self.table.pid_path("reused"), "w") as pid_file:
            pid_file.write(f"{os.getpid()} 1\n")
        self.assertEqual({}, self.table.running())
        self.assertIsNone(self.table.pid("short"))
        # A stale pid file does not block a new start...
        new = self.table.start("short", ["sleep", "60"])
        self.assertNotEqual(pid, new)
        self.assertEqual({"short": new}, self.table.running())
        # ... and stopping by a reused pid never signals that process.
        self.assertFalse(self.table.stop("reused"))
        self.assertFalse(os.path.exists(self.table.pid_path("reused")))

    def test_sigkill_for_a_group_that_ignores_sigterm(self):
        pid = self.table.start("stubborn", [sys.executable, "-c", STUBBORN])
        line = procs.wait_until(
            lambda: [x for x in self.table.tail("stubborn").splitlines()
                     if x.startswith("grandchild")], 5, "grandchild")
        grandchild = int(line[0].split()[1])
        self.assertEqual(os.getpgid(grandchild), pid)
        began = time.monotonic()
        self.assertTrue(self.table.stop("stubborn", timeout=0.5))
        self.assertLess(time.monotonic() - began, 3)
        self.assertFalse(_alive(pid))
        self.assertFalse(_alive(grandchild))
        self.assertEqual([], procs.group_members(pid))

    def test_kill_as_a_crash_skips_the_sigterm_handler(self):
        # The words are joined at run time: the log's start line holds the
        # program's source, which must not match.
        handler = ("import signal, sys, time\n"
                   "def bye(*a):\n"
                   "    print('stopped', 'gracefully', flush=True)\n"
                   "    sys.exit(0)\n"
                   "signal.signal(signal.SIGTERM, bye)\n"
                   "print('handler', 'set', flush=True); time.sleep(60)\n")
        # The log is appended to: one "stopped gracefully" after both runs
        # means the SIGKILL run never ran the handler.
        for runs, first in enumerate((signal.SIGTERM, signal.SIGKILL), 1):
            pid = self.table.start("crashy", [sys.executable, "-c",
                                              handler])
            procs.wait_until(
                lambda: self.table.tail("crashy").count("handler set")
                == runs, 5, "handler set")
            self.assertTrue(self.table.stop("crashy", timeout=5,
                                            first_signal=first))
            self.assertFalse(_alive(pid))
            graceful = self.table.tail("crashy").count("stopped gracefully")
            self.assertEqual(1, graceful, first)

    def test_stop_all_in_reverse_order(self):
        # Each child writes its name to a shared file when SIGTERM comes.
        record = os.path.join(self.state, "stopped")
        script = ("import signal, sys, time\n"
                  "def bye(*_):\n"
                  f"    open({record!r}, 'a').write(sys.argv[1] + '\\n')\n"
                  "    sys.exit(0)\n"
                  "signal.signal(signal.SIGTERM, bye)\n"
                  "print('re' 'ady', flush=True)\n"
                  "time.sleep(60)\n")
        for name in ("first", "second", "third"):
            self.table.start(name, [sys.executable, "-c", script, name])
            procs.wait_until(
                lambda: "ready" in self.table.tail(name).splitlines(), 5,
                "ready")
        # Another table object (a later command) finds them from the files.
        other = procs.ProcessTable(self.state)
        self.assertEqual(["third", "second", "first"], other.stop_all(5))
        with open(record) as stopped:
            self.assertEqual(["third", "second", "first"],
                             stopped.read().split())
        self.assertEqual({}, other.running())
        self.assertEqual([], other.stop_all(5))

    def test_tail_of_a_long_log(self):
        self.table.start("lines", [
            sys.executable, "-c",
            "for i in range(5000): print('line', i)"])
        procs.wait_until(
            lambda: "line 4999" in self.table.tail("lines", 1), 5, "end")
        self.assertEqual([f"line {i}" for i in range(4990, 5000)],
                         self.table.tail("lines", 10).splitlines())
        self.assertEqual("", self.table.tail("nothing"))


class WaitTest(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.table = procs.ProcessTable(
            self.useFixture(fixtures.TempDir()).path)
        self.addCleanup(self.table.stop_all, 1.0)

    def _free_port(self) -> int:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            return probe.getsockname()[1]

    def test_port_of_a_server(self):
        port = self._free_port()
        self.table.start("server", [
            sys.executable, "-c",
            "import socket, time; s = socket.socket(); "
            "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
            f"s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(60)"])
        procs.wait_for_port("127.0.0.1", port, 5, self.table, "server")

    def test_process_died(self):
        self.table.start("dying", [
            sys.executable, "-c",
            "import sys; print('cannot bind: no reason'); sys.exit(3)"])
        began = time.monotonic()
        error = self.assertRaises(
            procs.CloudError, procs.wait_for_port, "127.0.0.1",
            self._free_port(), 30, self.table, "dying")
        self.assertLess(time.monotonic() - began, 5)
        self.assertIn("dying exited while waiting", str(error))
        self.assertIn("cannot bind: no reason", str(error))
        self.assertIn(self.table.log_path("dying"), str(error))

    def test_timeout_shows_the_log(self):
        self.table.start("silent", [
            sys.executable, "-c",
            "import time; print('still booting', flush=True); "
            "time.sleep(60)"])
        procs.wait_until(lambda: "booting" in self.table.tail("silent"), 5,
                         "output")
        error = self.assertRaises(
            procs.CloudError, procs.wait_for_port, "127.0.0.1",
            self._free_port(), 0.3, self.table, "silent")
        self.assertIn("no listener on 127.0.0.1:", str(error))
        self.assertIn("still booting", str(error))

    def test_http(self):
        # The server is a child process: under Cinder's tests eventlet
        # patches threads, which a server thread here would block.
        port = self._free_port()
        self.table.start("web", [sys.executable, "-c", HTTP_SERVER,
                                 str(port)])
        base = f"http://127.0.0.1:{port}"
        self.assertEqual(404, procs.wait_for_http(base + "/missing", 5,
                                                  self.table, "web"))
        error = self.assertRaises(procs.CloudError, procs.wait_for_http,
                                  base + "/busy", 0.3, self.table, "web")
        self.assertIn("HTTP status 503", str(error))
        self.assertEqual(503, procs.wait_for_http(base + "/busy", 5,
                                                  ok={503}))
        error = self.assertRaises(
            procs.CloudError, procs.wait_for_http,
            f"http://127.0.0.1:{self._free_port()}/", 0.3)
        self.assertIn("no answer from", str(error))
