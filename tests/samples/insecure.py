"""A small file with classic insecure patterns, for `make demo` and the CLI tests."""
import hashlib
import os
import pickle
import subprocess

import requests
import yaml


def run(cmd):
    # os.system(cmd) in a comment is fine
    subprocess.run(cmd, shell=True)


def load(blob, path):
    data = pickle.loads(blob)
    with open(path) as f:
        cfg = yaml.load(f)
    return data, cfg


def digest(data):
    return hashlib.md5(data).hexdigest()


def fetch(url):
    return requests.get(url, verify=False)


def lookup(cur, name):
    cur.execute(f"SELECT * FROM users WHERE name = '{name}'")
    print("eval(x) in a string is fine")
    return os.environ.get("HOME")
