"""Cleaning group: raw layer -> clean layer."""

import dagster as dg

from .assets import clean_tasks

defs = dg.Definitions(assets=[clean_tasks])
