"""Imported only by the worker fork server (see pipeline.pool): import and warm up once."""

from pipeline.pool import warm_up

warm_up()
