"""The same jobs done safely: `ward check tests/samples/clean.py` exits 0."""
import hashlib
import subprocess

import requests
import yaml


def run(args):
    # os.system(cmd) in a comment is fine
    subprocess.run(args, shell=False, check=True)


def load(path):
    with open(path) as f:
        return yaml.safe_load(f)


def digest(data):
    return hashlib.sha256(data).hexdigest()


def fetch(url):
    return requests.get(url, timeout=10)


def lookup(cur, name):
    cur.execute("SELECT * FROM users WHERE name = ?", (name,))
    print("eval(x) in a string is fine")
