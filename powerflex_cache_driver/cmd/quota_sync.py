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
"""Cinder's own quota sync, as ``cinder-manage quota sync`` runs it, repaired.

``powerflex-cache-manage volumes reconcile --fix`` syncs a project's quota
usage to its records once they are right (:func:`sync_quota_usage`).
"""

import contextlib
import io
from typing import Any

from cinder.cmd import manage as cinder_manage
from cinder import context as cinder_context
from cinder.db import api as db_api
from cinder import quota

# Cinder 29 keeps its transaction context in cinder.db.api, earlier
# releases in cinder.db.sqlalchemy.api.
try:
    TRANSACTIONS = db_api.main_context_manager
except AttributeError:
    from cinder.db.sqlalchemy import api as sqlalchemy_api
    TRANSACTIONS = sqlalchemy_api.main_context_manager


class KnownResourcesSync(cinder_manage.QuotaCommands):
    """Cinder's quota sync over the resources that still exist."""

    def _get_usages(self, ctxt: Any, resources: dict, project: str) -> list:
        return [usage for usage in
                super()._get_usages(ctxt, resources, project)
                if usage.resource in resources]


def sync_quota_usage(project_id: str) -> None:
    """Sync a project's quota usage to its records, as Cinder's tool does.

    The code of ``cinder-manage quota sync --project-id`` (its printout
    dropped), with two repairs: it runs in a write transaction (up to
    Cinder 28 that code runs in a read transaction, so what it fixes is
    never committed), and it leaves out the usage of volume types deleted
    since (``gigabytes_<type>``, ``volumes_<type>``...), on which Cinder's
    tool stops with a ``KeyError``.
    """
    resources = dict(quota.QUOTAS.resources)
    resources.update(quota.GROUP_QUOTAS.resources)
    ctxt = cinder_context.get_admin_context()
    with TRANSACTIONS.writer.using(ctxt), \
            contextlib.redirect_stdout(io.StringIO()):
        KnownResourcesSync()._check_project_sync(ctxt, project_id, True,
                                                 resources)
