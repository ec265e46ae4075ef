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
"""A Dell PowerFlex gateway simulator for tests, demos and benchmarks.

HTTPS on loopback with a private CA, a stateful array enforcing the
invariants Cinder relies on, sparse-file backed volumes, a request log
without secrets and fault injection. Pure Python: the standard library and
``cryptography``; nothing here imports Cinder.

Example::

    from powerflex_cache_driver.simulator import GatewaySimulator

    with GatewaySimulator(workdir, snapshot_limit=3) as sim:
        options = sim.backend_options()   # san_ip, port, login, CA path...
        ...                               # run Cinder against sim.url
        sim.faults.fail("snapshotVolumes", 0, details_rc=182)
        sim.faults.delay("getVolume", 31)  # beyond Cinder's read timeout
        sim.faults.drop("removeVolume", after=True)
        assert sim.counts()["setVolumeSize"] == 0
        volume = sim.array.volume_by_name(name)

Operation names (request log, fault keys): login, logout, version,
getDomainByName, getProtectionDomain, queryProtectionDomains,
getPoolByName, getStoragePool, queryPoolStatistics, metricsQuery,
getPoolVolumes, createVolume, getVolumes, getVolume, getVolumeByName,
setVolumeSize, removeVolume, setVolumeName, addMappedSdc, removeMappedSdc,
setMappedSdcLimits, overwriteVolumeContent, migrateVTree, snapshotVolumes,
createSnapshot, createThinClone, getVTree, getVTreeStatistics, getSdcs,
getSdc, getSdcVolumes, getHosts, createHost, getSdts, getSystems, and
``unknown`` for a path no route matches.
"""

from powerflex_cache_driver.simulator.errors import ApiError
from powerflex_cache_driver.simulator.gateway import DEFAULT_PASSWORD
from powerflex_cache_driver.simulator.gateway import DEFAULT_SDC_GUID
from powerflex_cache_driver.simulator.gateway import DEFAULT_USERNAME
from powerflex_cache_driver.simulator.gateway import GatewaySimulator

__all__ = ["ApiError", "DEFAULT_PASSWORD", "DEFAULT_SDC_GUID",
           "DEFAULT_USERNAME", "GatewaySimulator"]
