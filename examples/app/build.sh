#!/bin/sh
# The example app's build step: byte-compiles the code, a stand-in for
# `pip install -r requirements.txt` and `collectstatic`.
set -eu
python3 -m compileall -q .
echo "built $(pwd)"
