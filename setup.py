"""Packaging for pypmacct.

``daemons/`` and ``plugins/`` live at the top of the repository (as the project's
layout asks) but are installed as ``pypmacct.daemons`` and ``pypmacct.plugins`` so that
nothing called ``plugins`` lands at the top of site-packages.
"""
from setuptools import setup

PROGRAMS = ["nfacctd", "sfacctd", "pmacctd", "uacctd"]

setup(
    name="pypmacct",
    version="0.1.0",
    description="pmacct-compatible network traffic accounting in Python",
    python_requires=">=3.11",
    packages=[
        "pypmacct",
        "pypmacct.config",
        "pypmacct.decoders",
        "pypmacct.sources",
        "pypmacct.output",
        "pypmacct.sql",
        "pypmacct.runtime",
        "pypmacct.daemons",
        "pypmacct.plugins",
        "pypmacct.client",
        "pypmacct.filters",
        "pypmacct.maps",
    ],
    package_dir={
        "pypmacct.daemons": "daemons",
        "pypmacct.plugins": "plugins",
    },
    package_data={"pypmacct": ["data/*"]},
    install_requires=[
        "numpy>=1.26",
        "setproctitle>=1.3",
        "dpkt>=1.9.8",
        "pcapy-ng>=2.1",          # pmacctd: live capture and pcap_filter (libpcap)
    ],
    extras_require={
        "mysql": ["mysqlclient>=2.1"],
        "pgsql": ["psycopg2>=2.9"],
        "test": ["pytest>=8", "hypothesis>=6.100", "scapy>=2.5", "pytest-timeout>=2.3",
                 "pytest-xdist>=3.5",
                 "mysqlclient>=2.1", "psycopg2>=2.9", "geoip2>=4.0", "mmdb-writer>=0.2"],
        "geoip": ["geoip2>=4.0"],
        # bench/run.py's scaling plot; py-spy to profile a running daemon (docs/profile.md)
        "bench": ["matplotlib>=3.7", "py-spy>=0.3"],
    },
    entry_points={
        "console_scripts": [f"{p}=pypmacct.daemons.{p}:run" for p in PROGRAMS] + [
            "pmacct=pypmacct.client.main:run",
            "pmsqlplay=pypmacct.sql.replay:main",
            "pmmyplay=pypmacct.sql.replay:main_mysql",
            "pmpgplay=pypmacct.sql.replay:main_pgsql",
        ],
    },
)
