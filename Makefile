# The two commands of the README.
.PHONY: run test bench

run:
	scripts/bootstrap.sh run
	.venv/bin/nfacctd -f examples/quickstart.conf

# -n 4: most test time is spent waiting on daemons (pmacct's savefile mode sleeps 2 s
# before reading and 2 s at exit), so four workers fill the two cores; loadscope keeps
# each module's shared daemons/captures in one worker.
test:
	scripts/bootstrap.sh test
	.venv/bin/python -m pytest -n 4 --dist loadscope

bench:
	scripts/bootstrap.sh test
	.venv/bin/python bench/run.py
