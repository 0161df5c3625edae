#!/usr/bin/env python3
"""Extracts the rule test tables of Traefik's HTTP muxer into data wh-proxy's tests run.

Usage: extract.py TRAEFIK_CHECKOUT > rules.json

Reads pkg/muxer/http/{matcher_test,matcher_v2_test,mux_test}.go and writes every table-driven
case of the shape `{desc, rule, [headers], [remoteAddr], expected: map[K]int, [expectedError]}`
(and TestHostRegexp's `hostExp`/`urls`, TestEmptyHost's raw requests) as JSON: the rule, its
syntax (v3, or v2 where the test adds it with "v2"), whether adding it must fail, and each
request (a URL, a method, a client address, headers, or raw bytes) with the status Traefik
answers (200: the route matched, 404: it did not). The cases are Traefik's facts; the harness
that runs them (tests/traefik.rs) is ours.
"""
import json
import re
import sys

CONSTS = {
    "http.StatusOK": 200, "http.StatusNotFound": 404,
    "http.MethodGet": "GET", "http.MethodPost": "POST", "http.MethodPut": "PUT",
    "http.MethodDelete": "DELETE", "http.MethodHead": "HEAD", "http.MethodOptions": "OPTIONS",
    "http.MethodPatch": "PATCH", "true": True, "false": False, "nil": None, "http.NoBody": None,
}

TOKEN = re.compile(r'''\s*(?:(//[^\n]*)|("(?:\\.|[^"\\])*")|(`[^`]*`)|([A-Za-z_][A-Za-z0-9_.]*)|(-?\d+)|(.))''', re.S)

def tokens(src):
    out = []
    for m in TOKEN.finditer(src):
        comment, dq, raw, ident, num, punct = m.groups()
        if comment:
            continue
        if dq is not None:
            out.append(("str", json.loads(dq) if "\\x" not in dq else bytes(dq[1:-1], "utf-8").decode("unicode_escape")))
        elif raw is not None:
            out.append(("str", raw[1:-1]))
        elif ident is not None:
            out.append(("id", ident))
        elif num is not None:
            out.append(("num", int(num)))
        elif punct is not None and not punct.isspace():
            out.append(("p", punct))
    return out

class P:
    def __init__(self, toks):
        self.t, self.i = toks, 0
    def peek(self, k=0):
        return self.t[self.i + k] if self.i + k < len(self.t) else ("eof", None)
    def next(self):
        tok = self.peek(); self.i += 1; return tok
    def expect(self, kind, val=None):
        tok = self.next()
        if tok[0] != kind or (val is not None and tok[1] != val):
            raise SyntaxError(f"expected {kind} {val}, got {tok} at {self.i}")
        return tok
    def skip_type(self):
        # map[K]V, []string, *http.Header: skipped up to the composite literal's brace.
        depth = 0
        while True:
            tok = self.peek()
            if tok == ("p", "[") : depth += 1
            elif tok == ("p", "]"): depth -= 1
            elif tok == ("p", "{") and depth == 0:
                return
            self.next()
    def value(self):
        tok = self.peek()
        if tok[0] == "str":
            self.next(); return tok[1]
        if tok[0] == "num":
            self.next(); return tok[1]
        if tok[0] == "id" and tok[1] in ("map",) or tok == ("p", "["):
            self.skip_type(); return self.composite()
        if tok[0] == "id":
            self.next()
            if self.peek() == ("p", "("):
                self.next(); arg = self.value(); self.expect("p", ")")
                if tok[1] == "strings.ToLower": return arg.lower()
                if tok[1] == "strings.ToUpper": return arg.upper()
                raise SyntaxError(f"unknown call {tok[1]}")
            if tok[1] in CONSTS: return CONSTS[tok[1]]
            raise SyntaxError(f"unknown identifier {tok[1]}")
        if tok == ("p", "{"):
            return self.composite()
        if tok == ("p", "&"):
            self.next(); return self.value()
        raise SyntaxError(f"unexpected {tok}")
    def composite(self):
        """{a: b, ...} as a list of (key, value) pairs, or {v, ...} as a list."""
        self.expect("p", "{")
        items = []
        while self.peek() != ("p", "}"):
            tok = self.peek()
            field = tok[0] == "id" and self.peek(1) == ("p", ":") and tok[1] not in CONSTS and "." not in tok[1]
            k = self.next()[1] if field else self.value()
            if self.peek() == ("p", ":"):
                self.next(); items.append((k, self.value()))
            else:
                items.append(k)
            if self.peek() == ("p", ","):
                self.next()
        self.expect("p", "}")
        return items

def header_list(pairs):
    return [[name, list(values)] for name, values in pairs]

def cases_of(name, body, syntax):
    m = re.search(r"testCases\s*:=\s*\[\]struct\s*\{.*?\n\t\}\{", body, re.S)
    if not m:
        return []
    p = P(tokens(body[m.end() - 1:]))
    table = p.composite()
    loop = re.search(r"for (\w+)(?:, \w+)? := range test\.(expected|urls)", body)
    kind = loop.group(1) if loop else None
    out = []
    for case in table:
        c = dict(case)
        rule = c.get("rule", c.get("hostExp", ""))
        entry = {"test": name, "desc": c.get("desc", ""), "syntax": syntax, "rule": rule,
                 "error": bool(c.get("expectedError", False)), "requests": []}
        common = {}
        if c.get("headers"):
            common["headers"] = [[k, [v]] for k, v in c["headers"]]
        if c.get("remoteAddr"):
            common["remote_addr"] = c["remoteAddr"]
        if "request" in c:
            entry["requests"].append({"raw": c["request"], "expect": c["expected"]})
        for key, status in c.get("expected", c.get("urls", [])) if isinstance(c.get("expected", c.get("urls")), list) else []:
            r = dict(common)
            if kind == "calledURL":
                r["url"] = key
            elif kind == "method":
                r["method"] = key
            elif kind == "remoteAddr":
                r["remote_addr"] = key
            elif kind == "headers":
                r["headers"] = header_list(key)
            else:
                raise SyntaxError(f"{name}: unknown input {kind}")
            r["expect"] = status
            entry["requests"].append(r)
        out.append(entry)
    return out

def main(root):
    all_cases = []
    for file in ["matcher_test.go", "matcher_v2_test.go", "mux_test.go"]:
        src = open(f"{root}/pkg/muxer/http/{file}", encoding="utf-8").read()
        funcs = re.split(r"\nfunc (Test\w+)\(t \*testing\.T\) \{", src)
        for name, body in zip(funcs[1::2], funcs[2::2]):
            if name in ("Test_addRoutePriority", "TestParseDomains", "TestGetRulePriority", "TestRoutingPath"):
                continue  # priorities and helpers: not request tables
            syntax = "v2" if re.search(r'AddRoute\(test\.\w+, "v2"', body) else "v3"
            for c in cases_of(name, body, syntax):
                c["file"] = file
                all_cases.append(c)
    json.dump(all_cases, sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")

if __name__ == "__main__":
    main(sys.argv[1])
