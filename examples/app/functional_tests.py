"""Functional tests for the example app, run from the developer's machine
against a deployed environment, the way Django projects run
`STAGING_SERVER=<host> python manage.py test functional_tests`.

    STAGING_SERVER=127.0.0.1:8601 python3 functional_tests.py
"""

import os
import sys
import unittest
import urllib.parse
import urllib.request
import uuid

SERVER = os.environ.get("STAGING_SERVER")


class HomePageTest(unittest.TestCase):
    def url(self, path):
        return f"http://{SERVER}{path}"

    def get(self, path):
        with urllib.request.urlopen(self.url(path), timeout=10) as response:
            return response.status, response.read().decode()

    def test_home_page_is_the_to_do_list(self):
        status, page = self.get("/")
        self.assertEqual(status, 200)
        self.assertIn("<title>To-Do</title>", page)
        self.assertNotIn("database not ready", page)

    def test_can_add_an_item_and_see_it_listed(self):
        text = f"Buy peacock feathers {uuid.uuid4().hex[:8]}"
        data = urllib.parse.urlencode({"text": text}).encode()
        with urllib.request.urlopen(self.url("/items"), data=data, timeout=10) as response:
            self.assertEqual(response.status, 201)
        _, page = self.get("/")
        self.assertIn(f"<li>{text}</li>", page)


if __name__ == "__main__":
    if not SERVER:
        sys.exit("set STAGING_SERVER=host:port to the environment under test")
    unittest.main(verbosity=2)
