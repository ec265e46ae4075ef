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
"""Both drivers against answers a real array gives where the simulator used
to be kinder.

* a removed volume stays in deletion (rc 212, name taken);
* ``setVolumeSize`` to a size off the 8 GiB granularity is refused (225);
* a pool without zero padding reads old data from blocks never written;
* a full pool answers 190 (thick), 300 (thin) and 191 (snapshot);
* a refused token gets a 401 whose body is not JSON;
* PowerFlex 5 has no VTree statistics.

Each scenario runs for Cinder's ``PowerFlexDriver`` and for this package's
driver; :meth:`expect` names what each does.
"""

import os
from typing import Any

from cinder import exception
from cinder import objects
from cinder.volume import volume_types
from oslo_utils import units
import requests

from powerflex_cache_driver.simulator import errors
from powerflex_cache_driver.simulator import model
from powerflex_cache_driver.simulator import storage
from tools.beds import disk_images
from tools.beds import driver_testcases
from tools.beds import inprocess_cinder

GIB = units.Gi
MIB = units.Mi
GIB_KB = units.Mi


def _status(test: Any, volume: Any) -> str:
    try:
        return objects.Volume.get_by_id(test.admin_ctx, volume.id).status
    except exception.VolumeNotFound:
        return "deleted"


# -- 1. removal in progress ---------------------------------------------------


class InDeletionScenario:
    """A removed volume stays in deletion on the array (rc 212)."""

    SIMULATOR_OPTIONS = {"removal_seconds": 600}

    def setUp(self) -> None:
        super().setUp()
        # cinder.utils.retry waits 1 s, then 2 s, between attempts.
        self.patch("tenacity.nap.sleep")

    def test_deleted_volume_stays_in_deletion(self) -> None:
        """Deleted in Cinder; on the array 212, counted, name taken."""
        volume, _unused = self.create_volume(8)
        self.delete_volume(volume)
        array = self.sim.array
        self.assertNotIn(volume.provider_id, array.volumes)
        self.assertIn(volume.provider_id, array.in_deletion)
        pool = array.pools[self.sim.pool_ids["SP1"]]
        self.assertEqual(
            1, array.pool_statistics(pool.id)["numOfVolumesInDeletion"])
        client = self.driver._get_client()
        r, response = client.execute_powerflex_get_request(
            "/instances/Volume::%(vol_id)s", vol_id=volume.provider_id)
        self.assertEqual((500, 212), (r.status_code,
                                      response["errorCode"]))
        name = array.in_deletion[volume.provider_id][0].name
        error = self.assertRaises(errors.ApiError, array.create_volume, name,
                                  pool.id, 8 * GIB_KB, model.THIN)
        self.assertEqual(errors.VOL_NAME_IN_USE, error.error_code)
        array.finish_removals()
        self.assertEqual({}, array.in_deletion)

    def test_delete_again_while_in_deletion(self) -> None:
        """The answer of removeVolume is lost; the delete is run again.

        The array removed the volume and answers 212 to everything about
        it. Cinder's driver takes 212 for a failure (only 79 means gone)
        and leaves the volume in error_deleting until the removal
        completes; ours takes it for a removal under way and deletes the
        record.
        """
        volume, _unused = self.create_volume(8)
        self.sim.faults.drop("removeVolume", after=True)
        self.api.delete(self.user_ctx, objects.Volume.get_by_id(
            self.user_ctx, volume.id))
        self._deliver()
        self.assertEqual("error_deleting", _status(self, volume))
        self.assertIn(volume.provider_id, self.sim.array.in_deletion)

        mark = len(self.sim.calls)
        self.api.delete(self.admin_ctx, objects.Volume.get_by_id(
            self.admin_ctx, volume.id), force=True)
        self._deliver()
        removes = [c.status for c in self.sim.calls[mark:]
                   if c.op == "removeVolume"]
        # Refused with 212 on each of the client's 3 attempts.
        self.assertEqual([500, 500, 500], removes)
        self.assertEqual(self.expect(stock="error_deleting", ours="deleted"),
                         _status(self, volume))
        # Once the array finished, Cinder's driver deletes it too (79).
        self.sim.array.finish_removals()
        if not self.is_ours:
            self.api.delete(self.admin_ctx, objects.Volume.get_by_id(
                self.admin_ctx, volume.id), force=True)
            self._deliver()
            self.assertEqual("deleted", _status(self, volume))
        self.assertEqual({}, self.sim.array.volumes)
        self.assert_array_matches_db()


class TestInDeletionStock(InDeletionScenario,
                          driver_testcases.StockDriverTestCase):
    """Cinder's PowerFlexDriver."""


class TestInDeletionOurs(InDeletionScenario,
                         driver_testcases.OurDriverTestCase):
    """powerflex_cache_driver's PowerFlexCacheDriver."""


# -- 2. rc 225 ----------------------------------------------------------------


class SizeGranularityScenario:
    """An extend to 20 GiB with ``powerflex_round_volume_capacity`` off.

    The array refuses (225) a ``setVolumeSize`` that is not a multiple of
    8; neither driver sends one. Cinder 29's driver rounds every extend
    up to 8 whatever the option (``round_to_num_gran``) and records the
    20 asked; ours refuses the size before any request, as it does on
    create with the option off.
    """

    BACKEND_OPTIONS = {"powerflex_round_volume_capacity": False}

    def test_extend_off_granularity(self) -> None:
        """Cinder's driver sends 24; ours refuses 20 without a request."""
        self.patch("tenacity.nap.sleep")
        volume, _unused = self.create_volume(16)
        results = self.spy(self.driver, "extend_volume")
        mark = len(self.sim.calls)
        self.api.extend(self.user_ctx, objects.Volume.get_by_id(
            self.user_ctx, volume.id), 20)
        self._deliver()
        calls = [(c.body["sizeInGB"], c.status)
                 for c in self.sim.calls[mark:] if c.op == "setVolumeSize"]
        self.assertEqual(self.expect(stock=[("24", 200)], ours=[]), calls)
        self.assertEqual(self.expect(stock="available",
                                     ours="error_extending"),
                         _status(self, volume))
        self.assertEqual(self.expect(stock=24, ours=16),
                         self.array_size_gib(volume))
        if self.is_ours:
            self.assertIsInstance(results[-1],
                                  exception.VolumeBackendAPIException)
            self.assertIn("PowerFlex allocates in multiples of 8 GiB",
                          str(results[-1]))
        # What a request off the granularity meets, for either client.
        client = self.driver._get_client()
        self.assertRaisesRegex(exception.VolumeBackendAPIException,
                               "Volume size must be in 8 GB blocks",
                               client.extend_volume, volume.provider_id, 28)
        self.assertEqual(self.expect(stock=24, ours=16),
                         self.array_size_gib(volume))


class TestSizeGranularityStock(SizeGranularityScenario,
                               driver_testcases.StockDriverTestCase):
    """Cinder's PowerFlexDriver."""


class TestSizeGranularityOurs(SizeGranularityScenario,
                              driver_testcases.OurDriverTestCase):
    """powerflex_cache_driver's PowerFlexCacheDriver."""


# -- 3. no zero padding ------------------------------------------------------


class ZeroPaddingScenario:
    """SP2 does not pad with zeros (allowed by the backend)."""

    SIMULATOR_POOLS = ("SP1", {"name": "SP2", "zero_padding_enabled": False})
    BACKEND_OPTIONS = dict(inprocess_cinder.TWO_POOLS,
                           powerflex_allow_non_padded_volumes=True)

    def _source(self) -> tuple[Any, str]:
        """An 8 GiB volume in SP1 with data at 0 and 4 GiB, and its file."""
        source, _unused = self.create_volume(8)
        reference = os.path.join(self.workdir, "source.raw")
        disk_images.make_raw(reference, 8 * GIB, [(0, MIB), (4 * GIB, MIB)],
                             "src")
        path = self.array_volume(source.provider_id).backing_path
        with open(reference, "rb") as src, open(path, "r+b") as dst:
            for offset in (0, 4 * GIB):
                src.seek(offset)
                dst.seek(offset)
                dst.write(src.read(MIB))
        return source, reference

    def test_blank_volume_reads_old_data(self) -> None:
        """Neither driver zeroes a new volume: it reads the old data."""
        volume, _unused = self.create_volume(
            8, pool=inprocess_cinder.SECOND_POOL)
        record = self.array_volume(volume.provider_id)
        self.assertEqual(self.sim.pool_ids["SP2"], record.pool_id)
        with open(record.backing_path, "rb") as handle:
            self.assertEqual(storage.stale_pattern(0),
                             handle.read(storage.STALE_BLOCK))

    def test_clone_into_unpadded_pool(self) -> None:
        """A clone placed in SP2 holds the source's bytes, zeros included.

        Cinder's driver snapshots in the source's pool (SP1); ours copies
        into SP2 through this host, writing every block there.
        """
        source, reference = self._source()
        clone, _unused = self.create_volume(8, source_volume=source,
                                            pool=inprocess_cinder.SECOND_POOL)
        record = self.array_volume(clone.provider_id)
        self.assertEqual(self.sim.pool_ids[self.expect(stock="SP1",
                                                       ours="SP2")],
                         record.pool_id)
        self.assertEqual(-1, disk_images.first_difference(
            reference, record.backing_path, 8 * GIB))

    def test_copy_skipping_zeros_is_caught(self) -> None:
        """Told the pool pads, our copy skips zeros: old data shows."""
        if not self.is_ours:
            self.skipTest("Cinder's driver makes no host copy here")
        source, reference = self._source()
        self.mock_object(self.driver, "_pool_reads_zeros",
                         return_value=True)
        clone, _unused = self.create_volume(8, source_volume=source,
                                            pool=inprocess_cinder.SECOND_POOL)
        path = self.array_volume(clone.provider_id).backing_path
        self.assertEqual(MIB, disk_images.first_difference(reference, path,
                                                           8 * GIB))


class TestZeroPaddingStock(ZeroPaddingScenario,
                           driver_testcases.StockDriverTestCase):
    """Cinder's PowerFlexDriver."""


class TestZeroPaddingOurs(ZeroPaddingScenario,
                          driver_testcases.OurDriverTestCase):
    """powerflex_cache_driver's PowerFlexCacheDriver."""


# -- 4. full pool -------------------------------------------------------------


class FullPoolScenario:
    """SP1 holds 16 GiB; a thick 16 GiB volume made outside Cinder fills it."""

    def setUp(self) -> None:
        super().setUp()
        self.patch("tenacity.nap.sleep")
        array = self.sim.array
        self.pool = array.pools[self.sim.pool_ids["SP1"]]
        self.pool.capacity_gib = 16

    def _fill(self) -> None:
        array = self.sim.array
        array.create_volume(None, self.pool.id, 16 * GIB_KB, model.THICK)

    def test_thin_create_snapshot_extend_in_a_full_pool(self) -> None:
        """300 on a thin create and extend, 191 on a snapshot."""
        volume, _unused = self.create_volume(8)
        self._fill()
        before = set(self.sim.array.volumes)
        failed, recorded = self.create_volume(8, expect_status="error")
        self.assertEqual([300], [c.response["errorCode"]
                                 for c in recorded.of("createVolume")])
        snapshot = self.api.create_snapshot(
            self.user_ctx, objects.Volume.get_by_id(self.user_ctx,
                                                    volume.id), "s", None)
        self._deliver()
        snapshot = objects.Snapshot.get_by_id(self.admin_ctx, snapshot.id)
        self.assertEqual("error", snapshot.status)
        rc = [c.response["details"][0]["rc"] for c in self.sim.calls
              if c.op == "snapshotVolumes"]
        self.assertEqual([191], rc)
        self.api.extend(self.user_ctx, objects.Volume.get_by_id(
            self.user_ctx, volume.id), 16)
        self._deliver()
        self.assertEqual("error_extending", _status(self, volume))
        self.assertEqual({300}, {c.response["errorCode"]
                                 for c in self.sim.calls
                                 if c.op == "setVolumeSize"})
        self.assertEqual(before, set(self.sim.array.volumes))
        self.assertEqual(8, self.array_size_gib(volume))
        self.assert_no_quota_drift()

    def test_thick_create_larger_than_free(self) -> None:
        """190 on a thick volume larger than the free capacity."""
        vtype = volume_types.create(self.admin_ctx, "thick",
                                    {"provisioning:type": "thick"})
        vtype = objects.VolumeType.get_by_id(self.admin_ctx, vtype["id"])
        _failed, recorded = self.create_volume(
            24, volume_type=vtype, expect_status="error")
        self.assertEqual([190], [c.response["errorCode"]
                                 for c in recorded.of("createVolume")])
        thick, _unused = self.create_volume(8, volume_type=vtype)
        self.assertEqual(model.THICK,
                         self.array_volume(thick.provider_id).volume_type)
        self.assert_no_quota_drift()


class TestFullPoolStock(FullPoolScenario,
                        driver_testcases.StockDriverTestCase):
    """Cinder's PowerFlexDriver."""


class TestFullPoolOurs(FullPoolScenario, driver_testcases.OurDriverTestCase):
    """powerflex_cache_driver's PowerFlexCacheDriver."""


# -- 5. 401 without JSON ---------------------------------------------------


class RefusedTokenScenario:
    """The gateway revokes every token (a restart, a password change)."""

    def test_delete_and_create_after_the_token_is_refused(self) -> None:
        """Cinder's driver fails to decode the 401 page; ours logs in again.

        Cinder 29's client only renews its token every five minutes:
        meanwhile its GETs raise ``JSONDecodeError`` (the 401 body is an
        HTML page) and its POSTs fail with "Unknown error".
        """
        self.patch("tenacity.nap.sleep")
        volume, _unused = self.create_volume(8)
        deletes = self.spy(self.driver, "delete_volume")
        self.sim.faults.invalidate_tokens()
        self.api.delete(self.user_ctx, objects.Volume.get_by_id(
            self.user_ctx, volume.id))
        self._deliver()
        self.assertEqual(self.expect(stock="error_deleting", ours="deleted"),
                         _status(self, volume))
        self.assertEqual(self.expect(stock=True, ours=False),
                         volume.provider_id in self.sim.array.volumes)
        if self.is_ours:
            self.assertEqual([None], deletes)
        else:
            self.assertIsInstance(deletes[0],
                                  requests.exceptions.JSONDecodeError)
        self.assertIn(401, [c.status for c in self.sim.calls])

        created, _unused = self.create_volume(
            8, expect_status=self.expect(stock="error", ours="available"))
        self.assertEqual(self.expect(stock=None, ours=True),
                         created.provider_id and
                         created.provider_id in self.sim.array.volumes)


class TestRefusedTokenStock(RefusedTokenScenario,
                            driver_testcases.StockDriverTestCase):
    """Cinder's PowerFlexDriver."""


class TestRefusedTokenOurs(RefusedTokenScenario,
                           driver_testcases.OurDriverTestCase):
    """powerflex_cache_driver's PowerFlexCacheDriver."""


# -- 6. PowerFlex 5: no VTree statistics --------------------------------------


class NoVtreeStatisticsScenario:
    """PowerFlex 5 with ``powerflex_max_image_cache_vtree_size = 2``."""

    SIMULATOR_OPTIONS = {"gen_type": "EC"}
    BACKEND_OPTIONS = {"powerflex_max_image_cache_vtree_size": 2}

    def setUp(self) -> None:
        opts = {o.name for o in
                driver_testcases.compat.STOCK_SDC_DRIVER.get_driver_options()}
        if "powerflex_max_image_cache_vtree_size" not in opts:
            self.skipTest("this Cinder has no "
                          "powerflex_max_image_cache_vtree_size")
        super().setUp()

    def test_vtree_size_option_is_not_enforced(self) -> None:
        """Every statistics query answers 404: the clones go on past 2."""
        meta, image = self.make_image("img", GIB, [(0, MIB)], "img")
        volumes = [self.create_volume(1, image_id=meta["id"])[0]
                   for _unused in range(3)]
        entry = self.cache_volume(meta["id"])
        vtree = self.array_volume(entry.provider_id).vtree_id
        members = self.sim.array.vtree_members(vtree)
        self.assertEqual(4, len(members))
        stats = [c.status for c in self.sim.calls
                 if c.op == "getVTreeStatistics"]
        # Cinder's driver clones the entry twice (the first volume is
        # the download, the entry a clone of it); ours makes the entry
        # first and clones it three times.
        self.assertEqual(self.expect(stock=[404] * 2, ours=[404] * 3),
                         stats)
        self.assertEqual(1, self.images.downloads[meta["id"]])
        for volume in volumes:
            self.assert_volume_content(volume, image)


class TestNoVtreeStatisticsStock(NoVtreeStatisticsScenario,
                                 driver_testcases.StockDriverTestCase):
    """Cinder's PowerFlexDriver."""


class TestNoVtreeStatisticsOurs(NoVtreeStatisticsScenario,
                                driver_testcases.OurDriverTestCase):
    """powerflex_cache_driver's PowerFlexCacheDriver."""
