"""Limits and name patterns shared by the models, the domain and the API schemas."""

from __future__ import annotations

import re

BIGINT_MAX = 2**63 - 1  # the largest value a BIGINT column (SQLite or PostgreSQL) holds
INT_MAX = 2**31 - 1  # the largest value an INTEGER column holds on PostgreSQL
SERVER_ID_MAX = 100  # characters in a server id
SERVER_ID_PATTERN = r"^[a-z0-9-]{1,100}$"  # what a server id may be
ACTION_TYPE_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"  # what an action type may be called
SERVER_ID = re.compile(SERVER_ID_PATTERN, re.ASCII)
ACTION_TYPE = re.compile(ACTION_TYPE_PATTERN, re.ASCII)
PAGE_LIMIT_DEFAULT = 50  # items per page when a list is not told otherwise
PAGE_LIMIT_MAX = 100  # the most items one page may hold
