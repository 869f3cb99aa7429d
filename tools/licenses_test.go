package tools

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/mod/module"

	"github.com/repolock/repolock/internal/testcluster"
)

// fixtures are the tools modules, each with the package it builds.
var fixtures = []struct{ dir, pkg string }{
	{"consul", "github.com/hashicorp/consul"},
	{"nomad", "github.com/hashicorp/nomad"},
	{"consul-template", "github.com/hashicorp/consul-template"},
	{"restic", "github.com/restic/restic/cmd/restic"},
}

// TestLicenses prints each fixture's licence, read from its module's
// LICENSE, and fails on a licence that is not open source (the Business
// Source License of Consul from 1.17 and Nomad from 1.7, AGPL) in any module
// a fixture or repolock itself is built from. A fixture the operator
// replaced with their own binary (CONSUL_BIN, …) is theirs: its module is
// not built here, so it is not read either.
func TestLicenses(t *testing.T) {
	for _, f := range fixtures {
		if v := os.Getenv(testcluster.BinVar(f.dir)); v != "" {
			t.Logf("%-16s %s=%s: the operator's own binary, not built here; its licence is theirs to check", f.dir, testcluster.BinVar(f.dir), v)
			continue
		}
		mods := buildModules(t, f.dir, f.pkg)
		main := mods[0]
		lic := Classify(readLicense(main.dir))
		t.Logf("%-16s %s@%s: %s", f.dir, main.path, main.version, lic)
		if !OpenSource(lic) {
			t.Errorf("%s: %s@%s is under %s, which is not open source", f.dir, main.path, main.version, lic)
		}
		checkAll(t, f.dir, "compiled in", mods[1:])
		checkRequired(t, f.dir)
	}
	checkBorg(t)
	// repolock's own build, tests included (porcupine is test-only); the
	// main module itself is not listed (it has no version).
	checkAll(t, "repolock", "compiled into it or its tests", buildModules(t, "..", "./..."))
}

// checkBorg reads the licence the Debian package of borg 1.4 gives borg's
// own files; with BORG_BIN set, borg is the operator's.
func checkBorg(t *testing.T) {
	t.Helper()
	if v := os.Getenv(testcluster.BinVar("borg")); v != "" {
		t.Logf("%-16s BORG_BIN=%s: the operator's own binary, not installed here", "borg", v)
		return
	}
	b, err := os.ReadFile(filepath.Join("..", ".bin", "borg-1.4", "COPYRIGHT"))
	if err != nil {
		t.Fatalf("borg 1.4's Debian copyright file: %v (run `make borg`)", err)
	}
	lic := debianLicense(b)
	t.Logf("%-16s borgbackup 1.4.0-4~bpo12+1 (Debian bookworm-backports): %s", "borg", lic)
	if lic != "BSD-3-clause" {
		t.Errorf("borg's Debian copyright names %q for its own files, want BSD-3-clause", lic)
	}
}

type mod struct{ path, version, dir string }

// checkRequired reads the licence of every module the tools module's
// go.mod requires that is in the module cache, compiled in or not, so no
// non-open module hides in a go.mod. (`go list -m all` cannot be used: the
// module proxy refuses one module of Consul's graph that no build needs.)
func checkRequired(t *testing.T, dir string) {
	t.Helper()
	cmd := exec.Command("go", "mod", "edit", "-json")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go mod edit -json in tools/%s: %v", dir, err)
	}
	var gomod struct {
		Require []struct{ Path, Version string }
	}
	if err := json.Unmarshal(out, &gomod); err != nil {
		t.Fatal(err)
	}
	cache, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	var mods []mod
	absent := 0
	for _, r := range gomod.Require {
		p, err := module.EscapePath(r.Path)
		if err != nil {
			t.Fatal(err)
		}
		d := filepath.Join(strings.TrimSpace(string(cache)), p+"@"+r.Version)
		if _, err := os.Stat(d); err != nil {
			absent++ // never downloaded, so not compiled into the fixture
			continue
		}
		mods = append(mods, mod{r.Path, r.Version, d})
	}
	checkAll(t, dir, "required by its go.mod", mods)
	t.Logf("%-16s %d modules required by its go.mod are not in the module cache (no build needs them)", dir, absent)
}

// buildModules lists the modules whose packages the build of pkg (run in
// tools/dir) compiles, the main module first.
func buildModules(t *testing.T, dir, pkg string) []mod {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-test", "-f",
		"{{with .Module}}{{.Path}} {{.Version}} {{.Dir}} {{.Main}}{{end}}", pkg)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list in tools/%s: %v", dir, err)
	}
	seen := map[string]bool{}
	var mods []mod
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 4 || seen[f[0]] {
			continue
		}
		seen[f[0]] = true
		// A tools module is a main module with no code: the fixture's
		// own module comes first.
		if f[3] == "true" && dir != ".." {
			continue
		}
		m := mod{f[0], f[1], f[2]}
		if m.path+"/" == pkg[:min(len(pkg), len(m.path)+1)] || m.path == pkg {
			mods = append([]mod{m}, mods...)
		} else {
			mods = append(mods, m)
		}
	}
	if len(mods) == 0 {
		t.Fatalf("go list in tools/%s found no module for %s", dir, pkg)
	}
	return mods
}

// checkAll fails on every module that is not open source, and logs how many
// modules were read under each licence.
func checkAll(t *testing.T, name, what string, mods []mod) {
	t.Helper()
	bad, summary := judge(mods)
	for _, b := range bad {
		t.Errorf("%s is built with %s", name, b)
	}
	t.Logf("%-16s %d modules %s: %s", name, len(mods), what, summary)
}

// judge names the modules that are not open source, and sums up how many
// were read under each licence.
func judge(mods []mod) (bad []string, summary string) {
	count := map[string]int{}
	for _, m := range mods {
		lic := Classify(readLicense(m.dir))
		count[lic]++
		if !OpenSource(lic) {
			bad = append(bad, fmt.Sprintf("%s@%s, which is under %s", m.path, m.version, lic))
		}
	}
	var parts []string
	for lic, n := range count {
		parts = append(parts, fmt.Sprintf("%s %d", lic, n))
	}
	sort.Strings(parts)
	return bad, strings.Join(parts, ", ")
}

// readLicense is the text of a module's licence file (any case: LICENSE,
// License, license.md, COPYING, APLv2). A module with none may still name
// its licence under a "License" heading of its README (tj/go-spin: MIT);
// then that line is the text. "" when there is neither.
func readLicense(dir string) string {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		n := strings.ToLower(e.Name())
		if !e.IsDir() && (strings.HasPrefix(n, "licen") || strings.HasPrefix(n, "copying") || n == "aplv2") {
			if b, err := os.ReadFile(filepath.Join(dir, e.Name())); err == nil {
				return string(b)
			}
		}
	}
	for _, e := range entries {
		if strings.HasPrefix(strings.ToLower(e.Name()), "readme") {
			b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
			if l := readmeLicense(string(b)); l != "" {
				return l
			}
		}
	}
	return ""
}

// readmeLicense is the first line under a README's "License" heading.
func readmeLicense(readme string) string {
	lines := strings.Split(readme, "\n")
	for i, l := range lines {
		h := strings.ToLower(strings.TrimSpace(strings.TrimLeft(l, "# ")))
		if !strings.HasPrefix(l, "#") || (h != "license" && h != "licence") {
			continue
		}
		for _, next := range lines[i+1:] {
			if t := strings.TrimSpace(next); t != "" {
				return t
			}
		}
	}
	return ""
}

// debianLicense is the licence a Debian copyright file gives the package's
// own files (the first "Files: *" paragraph).
func debianLicense(b []byte) string {
	inAll := false
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "Files:"):
			inAll = strings.TrimSpace(strings.TrimPrefix(line, "Files:")) == "*"
		case inAll && strings.HasPrefix(line, "License:"):
			return strings.TrimSpace(strings.TrimPrefix(line, "License:"))
		}
	}
	return ""
}

func TestReadmeLicense(t *testing.T) {
	if got := readmeLicense("# spin\n\n## Usage\n\n# License\n\n MIT\n"); got != "MIT" {
		t.Errorf("readmeLicense = %q, want MIT", got)
	}
	if got := readmeLicense("# spin\nSee the license.\n"); got != "" {
		t.Errorf("readmeLicense without a heading = %q", got)
	}
}

func TestClassify(t *testing.T) {
	for text, want := range map[string]string{
		"": "none",
		"Business Source License 1.1\n\nParameters\n\nLicensor: HashiCorp, Inc.": "BUSL-1.1",
		"Mozilla Public License Version 2.0\n==================================": "MPL-2.0",
		"Mozilla Public License, version 2.0":                                    "MPL-2.0",
		"  Apache License\n  Version 2.0, January 2004":                          "Apache-2.0",
		"Permission is hereby granted, free of charge, to any person":            "MIT",
		"Redistribution and use in source and binary forms ... Neither the name": "BSD-3-Clause",
		"Redistribution and use in source and binary forms, with or without":     "BSD-2-Clause",
		"GNU AFFERO GENERAL PUBLIC LICENSE Version 3":                            "AGPL-3.0",
		"All rights reserved.": "unknown",
	} {
		if got := Classify(text); got != want {
			t.Errorf("Classify(%.40q) = %s, want %s", text, got, want)
		}
	}
	for spdx, want := range map[string]bool{"MPL-2.0": true, "BSD-2-Clause": true, "BUSL-1.1": false, "AGPL-3.0": false, "none": false, "unknown": false} {
		if OpenSource(spdx) != want {
			t.Errorf("OpenSource(%s) = %t", spdx, !want)
		}
	}
}

// A module under the Business Source License (Consul 1.20's text), or one
// without any licence, is named; an MPL-2.0 one is not.
func TestJudgeNamesBUSL(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		d := filepath.Join(dir, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if text != "" {
			if err := os.WriteFile(filepath.Join(d, "LICENSE"), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	mods := []mod{
		{"github.com/hashicorp/consul", "v1.20.6", write("busl", "License text copyright (c) 2020 HashiCorp, Inc. All rights reserved.\nBusiness Source License 1.1\n\nParameters\nLicensor: HashiCorp, Inc.")},
		{"github.com/hashicorp/consul", "v1.16.3", write("mpl", "Mozilla Public License, version 2.0\n\n1. Definitions")},
		{"example.com/nolicence", "v0.1.0", write("none", "")},
	}
	bad, summary := judge(mods)
	if len(bad) != 2 || !strings.Contains(bad[0], "v1.20.6, which is under BUSL-1.1") || !strings.Contains(bad[1], "under none") {
		t.Errorf("judge named %q (%s)", bad, summary)
	}
}
