"""Imported only by the worker fork server (see pipeline.pool): import and warm up once."""

from pipeline.pool import die_with_parent, warm_up

die_with_parent()
warm_up()
