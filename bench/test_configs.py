"""Cargo-free checks of the benchmark's config generation:
`python3 -m unittest discover -s bench -p 'test_*.py'`."""

import os
import tomllib
import unittest

import configs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def shipped(name):
    return configs.load_toml(os.path.join(ROOT, "config", f"{name}.toml"))


class GatewayConfigs(unittest.TestCase):
    def test_every_bench_config_survives_the_toml_writer(self):
        for name in ("web", "mobile", "partner"):
            for production in (True, False):
                doc = configs.gateway(shipped(name), 8999, production, proxy_auth_none=True)
                self.assertEqual(tomllib.loads(configs.dump_toml(doc)), doc, name)

    def test_plain_has_no_limits_and_an_open_proxy_route(self):
        doc = configs.gateway(shipped("web"), 8181, False, proxy_auth_none=True)
        self.assertNotIn("rate_limit", doc)
        self.assertEqual(doc["server"]["listen"], "127.0.0.1:8181")
        self.assertTrue(doc["routes"])
        for route in doc["routes"]:
            self.assertEqual(route["auth"], "none")
            self.assertNotIn("scopes", route)

    def test_production_keeps_auth_and_raises_every_limit(self):
        base = shipped("mobile")
        doc = configs.gateway(base, 8282, True)
        self.assertEqual(doc["auth"], base["auth"])
        rules = doc["rate_limit"]["rules"]
        self.assertTrue(rules)
        for rule in rules:
            self.assertEqual(rule["limit"], configs.RATE_LIMIT)
        # The shipped config itself is left alone.
        self.assertNotEqual(base["rate_limit"]["rules"][0]["limit"], configs.RATE_LIMIT)
        # The partner's daily and monthly quotas too: a benchmark spends far more than a day's.
        partner = configs.gateway(shipped("partner"), 8283, True)
        quotas = partner["rate_limit"]["quotas"]
        self.assertTrue(quotas)
        for quota in quotas:
            self.assertEqual(quota["limit"], configs.RATE_LIMIT)

    def test_overlays_merge_tables(self):
        merged = configs.merge({"a": {"x": 1, "y": 2}, "b": [1]}, {"a": {"y": 3}, "c": True})
        self.assertEqual(merged, {"a": {"x": 1, "y": 3}, "b": [1], "c": True})

    def test_peer_configs_proxy_the_same_route(self):
        self.assertIn("location /api/users/", configs.nginx("/tmp/x", 8401, 9101))
        self.assertIn("proxy_pass http://users/users/;", configs.nginx("/tmp/x", 8401, 9101))
        self.assertIn("keepalive 64;", configs.nginx("/tmp/x", 8401, 9101))
        self.assertIn("replace-path /api/users/(.*) /users/\\1", configs.haproxy(8402, 9101))


if __name__ == "__main__":
    unittest.main()
