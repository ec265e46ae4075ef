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
"""Shared helpers of this package's Tempest tests.

Images are made here with ``qemu-img`` from one raw file holding a known
pattern; cache entries are found through the admin API (volumes of the
Cinder internal tenant named ``image-<image id>``); quota usage is read from
the admin quota API with ``usage=True``.
"""

import hashlib
import io
import os
import shutil
import subprocess
import tempfile
import time
from typing import Any, Callable, Iterable, Optional

from tempest.api.volume import base
from tempest.common import waiters
from tempest import config
from tempest.lib.common.utils import data_utils
from tempest.lib.common.utils import test_utils

CONF = config.CONF

MIB = 1024 * 1024

IMAGE_BYTES = 4 * MIB
"""Virtual size of the test images: a few MiB, so a cache miss is quick."""

QEMU_FORMATS = {"vhd": "vpc"}
"""Glance disk format -> qemu-img format, where they differ."""

QEMU_OPTIONS = {"vmdk": ["-o", "subformat=monolithicSparse"]}
"""qemu-img options per format: a VMDK subformat Cinder and Glance allow."""

GONE_STATUSES = ("deleting", "deleted")
"""Statuses of volumes on their way out (an evicted cache entry)."""


def round_up(size_gib: int, granularity_gib: int) -> int:
    """``size_gib`` rounded up to a multiple of ``granularity_gib``."""
    return -(-size_gib // granularity_gib) * granularity_gib


def pattern(seed: str, length: int) -> bytes:
    """``length`` deterministic pseudo-random bytes for ``seed``."""
    out = bytearray()
    counter = 0
    while len(out) < length:
        out.extend(hashlib.sha256(
            ("%s/%d" % (seed, counter)).encode()).digest())
        counter += 1
    return bytes(out[:length])


def make_reference_raw(path: str, size: int = IMAGE_BYTES) -> str:
    """Write a raw disk image with data at its start, middle and end.

    The holes between the pieces of data are zeros, as in a real disk
    image; the last bytes hold data so that a copy cut short shows. Returns
    the SHA-256 of the whole file.
    """
    pieces = [(0, pattern("start", 64 * 1024)),
              (size // 2 + 4096, pattern("middle", 300 * 1024)),
              (size - 8192, pattern("end", 8192))]
    with open(path, "wb") as out:
        out.truncate(size)
        for offset, data in pieces:
            out.seek(offset)
            out.write(data)
    digest = hashlib.sha256()
    with open(path, "rb") as raw:
        for block in iter(lambda: raw.read(MIB), b""):
            digest.update(block)
    return digest.hexdigest()


def qemu_img(*args: str) -> str:
    """Run ``qemu-img`` and return its standard output."""
    proc = subprocess.run(["qemu-img"] + list(args), capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError("qemu-img %s failed (%d): %s"
                           % (" ".join(args), proc.returncode,
                              proc.stderr.strip()))
    return proc.stdout


def convert_image(raw_path: str, disk_format: str, out_path: str) -> None:
    """Convert the raw reference into ``disk_format`` with qemu-img."""
    if disk_format == "raw":
        shutil.copyfile(raw_path, out_path)
        return
    qemu_format = QEMU_FORMATS.get(disk_format, disk_format)
    qemu_img("convert", "-f", "raw", "-O", qemu_format,
             *QEMU_OPTIONS.get(disk_format, []), raw_path, out_path)


def compare_with_reference(reference_raw: str, image_path: str,
                           image_format: str) -> Optional[str]:
    """Compare an image's disk with the raw reference.

    ``qemu-img compare`` in its default mode: identical over the
    reference's size, and nothing but zeros (or unallocated space) past it.
    Returns None when identical, else qemu-img's explanation.
    """
    proc = subprocess.run(
        ["qemu-img", "compare", "-f", "raw", "-F", image_format,
         reference_raw, image_path],
        capture_output=True, text=True, check=False)
    if proc.returncode == 0:
        return None
    return (proc.stdout + proc.stderr).strip() or (
        "qemu-img compare exited %d" % proc.returncode)


class PowerFlexCacheBaseTest(base.BaseVolumeAdminTest):
    """Base of this package's tests: admin and primary clients, helpers."""

    @classmethod
    def skip_checks(cls) -> None:
        """Skip unless enabled and Glance is available."""
        super().skip_checks()
        if not CONF.powerflex_cache.enabled:
            raise cls.skipException("[powerflex_cache] enabled is False")
        if not CONF.service_available.glance:
            raise cls.skipException("Glance is not available")

    @classmethod
    def setup_credentials(cls) -> None:
        """Keep the primary project id for quota checks."""
        super().setup_credentials()
        cls.project_id = cls.os_primary.credentials.project_id

    @property
    def granularity(self) -> int:
        """Array granularity in GiB."""
        return CONF.powerflex_cache.granularity_gib

    def rounded(self, size_gib: int) -> int:
        """What the driver records for a request of ``size_gib``."""
        return round_up(size_gib, self.granularity)

    # -- polling --------------------------------------------------------------

    def poll(self, check: Callable[[], Any], what: str,
             timeout: Optional[float] = None) -> Any:
        """Call ``check`` until it returns a true non-string, or fail.

        A string (or a false value) means "not yet"; the last string
        describes the state in the failure message.
        """
        deadline = time.monotonic() + (timeout or CONF.volume.build_timeout)
        last: Any = None
        while True:
            last = check()
            if last and not isinstance(last, str):
                return last
            if time.monotonic() > deadline:
                self.fail("Timed out waiting for %s; last state: %s"
                          % (what, last))
            time.sleep(CONF.volume.build_interval)

    # -- images ---------------------------------------------------------------

    def upload_image(self, path: str, disk_format: str,
                     **properties: Any) -> dict:
        """Upload a private image to Glance; deleted at clean-up."""
        image = self.images_client.create_image(
            name=data_utils.rand_name(
                prefix=CONF.resource_name_prefix,
                name=self.__class__.__name__ + "-" + disk_format),
            container_format="bare", disk_format=disk_format,
            visibility="private", **properties)
        self.addCleanup(test_utils.call_and_ignore_notfound_exc,
                        self.images_client.delete_image, image["id"])
        with open(path, "rb") as data:
            self.images_client.store_image_file(image["id"],
                                                io.BytesIO(data.read()))
        waiters.wait_for_image_status(self.images_client, image["id"],
                                      "active")
        return self.images_client.show_image(image["id"])

    # -- the image-volume cache -----------------------------------------------

    def cache_entries(self, image_id: str,
                      include_gone: bool = False) -> list[dict]:
        """Volumes of the image-volume cache for ``image_id`` (admin view).

        Cinder names a cache entry's volume ``image-<image id>`` and makes it
        in its internal tenant. The name filter needs Cinder's
        ``resource_query_filters_file``; the exact name is checked here too.
        """
        name = "image-%s" % image_id
        volumes = self.admin_volume_client.list_volumes(
            detail=True, params={"all_tenants": 1, "name": name})["volumes"]
        return [vol for vol in volumes if vol["name"] == name and
                (include_gone or vol["status"] not in GONE_STATUSES)]

    def single_cache_entry(self, image_id: str) -> dict:
        """Wait until the image has one cache entry (older ones gone)."""

        def check() -> Any:
            entries = self.cache_entries(image_id, include_gone=True)
            live = [e for e in entries if e["status"] not in GONE_STATUSES]
            if len(entries) == 1 and live and live[0]["status"] in (
                    "available", "in-use"):
                return live[0]
            return "cache entries %s" % [(e["id"], e["status"])
                                         for e in entries]

        entry = self.poll(check, "one cache entry of image %s" % image_id)
        owner = entry["os-vol-tenant-attr:tenant_id"]
        internal = CONF.powerflex_cache.internal_project_id
        if internal:
            self.assertEqual(internal, owner,
                             "cache entry %s is not the internal tenant's"
                             % entry["id"])
        else:
            self.assertNotEqual(self.project_id, owner,
                                "cache entry %s belongs to the test project"
                                % entry["id"])
        return entry

    def remove_cache_entries_at_cleanup(self, image_id: str) -> None:
        """Delete the image's cache entries at clean-up (as admin).

        Registered before the volumes are made, so it runs after they are
        deleted. Cinder evicts an entry whose volume is deleted.
        """

        def remove() -> None:
            for entry in self.cache_entries(image_id, include_gone=True):
                if entry["status"] not in GONE_STATUSES:
                    test_utils.call_and_ignore_notfound_exc(
                        self.admin_volume_client.delete_volume, entry["id"])
                self.admin_volume_client.wait_for_resource_deletion(
                    entry["id"])

        self.addCleanup(remove)

    # -- volumes --------------------------------------------------------------

    def create_volumes_at_once(self, count: int, **kwargs: Any) -> list[dict]:
        """Send ``count`` create requests, then wait for all of them.

        Each volume is deleted at clean-up. Returns the volumes as shown
        once available.
        """
        ids = []
        for _ in range(count):
            volume = self.volumes_client.create_volume(
                name=data_utils.rand_name(
                    prefix=CONF.resource_name_prefix,
                    name=self.__class__.__name__ + "-Volume"),
                **kwargs)["volume"]
            self.addCleanup(test_utils.call_and_ignore_notfound_exc,
                            self.delete_volume, self.volumes_client,
                            volume["id"])
            ids.append(volume["id"])
        for volume_id in ids:
            waiters.wait_for_volume_resource_status(
                self.volumes_client, volume_id, "available")
        return [self.volumes_client.show_volume(volume_id)["volume"]
                for volume_id in ids]

    def assert_recorded_size(self, volume: dict, expected_gib: int,
                             requested_gib: Optional[int] = None) -> dict:
        """Check the size Cinder shows for a volume; return the volume."""
        shown = self.volumes_client.show_volume(volume["id"])["volume"]
        self.assertEqual(
            expected_gib, shown["size"],
            "volume %s (requested %s GiB) is recorded at %s GiB, expected "
            "%s GiB" % (shown["id"], requested_gib, shown["size"],
                        expected_gib))
        return shown

    # -- quota ----------------------------------------------------------------

    def _project_records(self, project_id: str) -> tuple[int, int, int]:
        """(volumes, GiB of volumes and snapshots, snapshots) of a project."""
        volumes = [
            vol for vol in self.admin_volume_client.list_volumes(
                detail=True, params={"all_tenants": 1})["volumes"]
            if vol["os-vol-tenant-attr:tenant_id"] == project_id]
        snapshots = [
            snap for snap in self.admin_snapshots_client.list_snapshots(
                detail=True, all_tenants=1)["snapshots"]
            if snap.get("os-extended-snapshot-attributes:project_id") ==
            project_id]
        gigabytes = (sum(vol["size"] for vol in volumes) +
                     sum(snap["size"] for snap in snapshots))
        return len(volumes), gigabytes, len(snapshots)

    def assert_usage_matches_records(self, project_id: Optional[str] = None
                                     ) -> None:
        """Quota usage equals what the project's records add up to.

        ``volumes`` in use is the number of volumes, ``gigabytes`` the sum
        of volume and snapshot sizes, ``snapshots`` the number of
        snapshots. Read twice around the usage, so that a volume of another
        test changing meanwhile (the internal tenant is shared) only makes
        it read again.
        """
        project_id = project_id or self.project_id

        def check() -> Any:
            before = self._project_records(project_id)
            quota = self.admin_quotas_client.show_quota_set(
                project_id, params={"usage": True})["quota_set"]
            after = self._project_records(project_id)
            usage = (quota["volumes"]["in_use"],
                     quota["gigabytes"]["in_use"],
                     quota["snapshots"]["in_use"])
            reserved = (quota["volumes"]["reserved"] or
                        quota["gigabytes"]["reserved"])
            if before == after == usage and not reserved:
                return True
            return ("project %s: records (volumes, GiB, snapshots) %s then "
                    "%s, quota in use %s, reserved GiB %s"
                    % (project_id, before, after, usage,
                       quota["gigabytes"]["reserved"]))

        self.poll(check, "quota usage to match the records", timeout=60)

    def raise_project_quota(self, **limits: int) -> None:
        """Set quota limits of the test project, restored at clean-up."""
        current = self.admin_quotas_client.show_quota_set(
            self.project_id)["quota_set"]
        self.addCleanup(self.admin_quotas_client.update_quota_set,
                        self.project_id,
                        **{key: current[key] for key in limits})
        self.admin_quotas_client.update_quota_set(self.project_id, **limits)

    # -- content --------------------------------------------------------------

    def assert_volume_holds(self, volume_id: str, reference_raw: str) -> None:
        """Upload a volume to Glance and compare it with the reference.

        The volume is uploaded as qcow2, so only its data travels (a raw
        upload would send the whole 8 GiB); the image is downloaded and
        compared with ``qemu-img compare``: the reference's bytes, then
        zeros to the end of the volume.
        """
        body = self.volumes_client.upload_volume(
            volume_id, image_name=data_utils.rand_name(
                prefix=CONF.resource_name_prefix,
                name=self.__class__.__name__ + "-upload"),
            disk_format="qcow2")["os-volume_upload_image"]
        image_id = body["image_id"]
        self.addCleanup(test_utils.call_and_ignore_notfound_exc,
                        self.images_client.delete_image, image_id)
        waiters.wait_for_image_status(self.images_client, image_id, "active")
        waiters.wait_for_volume_resource_status(self.volumes_client,
                                                volume_id, "available")
        data = self.images_client.show_image_file(image_id).data
        workdir = tempfile.mkdtemp(prefix="pfcache-upload-")
        self.addCleanup(shutil.rmtree, workdir, True)
        path = os.path.join(workdir, "volume.qcow2")
        with open(path, "wb") as out:
            out.write(data)
        difference = compare_with_reference(reference_raw, path, "qcow2")
        self.assertIsNone(difference,
                          "volume %s does not hold the image's bytes: %s"
                          % (volume_id, difference))


class ImageFiles:
    """The raw reference image and its conversions, in a temporary dir."""

    def __init__(self, formats: Iterable[str]) -> None:
        self.workdir = tempfile.mkdtemp(prefix="pfcache-images-")
        self.raw = os.path.join(self.workdir, "reference.raw")
        self.sha256 = make_reference_raw(self.raw)
        self.paths: dict[str, str] = {}
        for disk_format in formats:
            path = os.path.join(self.workdir, "image." + disk_format)
            convert_image(self.raw, disk_format, path)
            self.paths[disk_format] = path

    def remove(self) -> None:
        """Remove the files."""
        shutil.rmtree(self.workdir, ignore_errors=True)


class ImageCacheBaseTest(PowerFlexCacheBaseTest):
    """Base of the tests of the image-volume cache."""

    @classmethod
    def skip_checks(cls) -> None:
        """Skip when ``[powerflex_cache] check_image_cache`` is False."""
        super().skip_checks()
        if not CONF.powerflex_cache.check_image_cache:
            raise cls.skipException(
                "[powerflex_cache] check_image_cache is False")
