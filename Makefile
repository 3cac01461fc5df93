# The two commands of the README.
.PHONY: run test bench

run:
	scripts/bootstrap.sh run
	.venv/bin/nfacctd -f examples/quickstart.conf

test:
	scripts/bootstrap.sh test
	.venv/bin/python -m pytest

bench:
	scripts/bootstrap.sh test
	.venv/bin/python bench/run.py
