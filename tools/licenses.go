// Package tools holds the tools modules that build the pinned test fixtures
// (Consul, Nomad, consul-template, restic) and borg's installer. Its test
// reads the licence of every fixture and of every module compiled into a
// fixture or into repolock, and fails on one that is not open source.
package tools

import "strings"

// Classify names the licence of a licence file's text by its SPDX id, by
// the phrases each licence's text carries. Unknown texts are "unknown";
// no text at all is "none".
func Classify(text string) string {
	t := strings.Join(strings.Fields(strings.ToLower(text)), " ")
	has := func(s ...string) bool {
		for _, x := range s {
			if !strings.Contains(t, x) {
				return false
			}
		}
		return true
	}
	switch {
	case t == "":
		return "none"
	case t == "mit": // a README's License heading (readmeLicense)
		return "MIT"
	// Checked first: BUSL's text quotes no other licence, but a
	// dual-licensed file must not pass as its open half.
	case has("business source license"):
		return "BUSL-1.1"
	// MPL-2.0 names the GNU licences (AGPL among them) as secondary
	// licences, so it is recognised before them.
	case has("mozilla public license", "2.0"):
		return "MPL-2.0"
	case has("gnu affero general public license"):
		return "AGPL-3.0"
	case has("apache license", "version 2.0"):
		return "Apache-2.0"
	case has("permission is hereby granted, free of charge"):
		return "MIT"
	case has("redistribution and use in source and binary forms", "neither the name"),
		has("redistribution and use in source and binary forms", "names of its contributors"):
		return "BSD-3-Clause"
	case has("redistribution and use in source and binary forms"):
		return "BSD-2-Clause"
	case has("permission to use, copy, modify, and/or distribute this software"),
		has("permission to use, copy, modify, and distribute this software"):
		return "ISC"
	case has("gnu lesser general public license"):
		return "LGPL"
	case has("gnu general public license"):
		return "GPL"
	case has("creative commons"):
		return "CC"
	case has("this is free and unencumbered software released into the public domain"):
		return "Unlicense"
	}
	return "unknown"
}

// OpenSource reports whether a licence named by Classify is open source.
// "none" and "unknown" are not decided here: the caller says what it saw.
func OpenSource(spdx string) bool {
	switch spdx {
	case "BUSL-1.1", "AGPL-3.0", "none", "unknown":
		return false
	}
	return true
}
