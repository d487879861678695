# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# A JUnit report from a shell suite, so that tests/run counts its cases with the others.
#   junit_case NAME pass|fail|skip [MESSAGE]   one case
#   junit_write FILE SUITE                     the report (nothing without FILE)

junit_body=""
# bash 5.2 reads "&" in a ${s//pattern/string} replacement as the match: "&lt;" would be "<lt;"
shopt -u patsub_replacement 2>/dev/null || true

junit_escape() {
	local s
	s=$(printf '%s' "$1" | tr -cd '[:print:]\n\t')
	s=${s//&/&amp;}
	s=${s//</&lt;}
	s=${s//>/&gt;}
	s=${s//\"/&quot;}
	printf '%s' "$s"
}

junit_case() {
	local name msg
	name=$(junit_escape "$1")
	msg=$(junit_escape "${3:-}")
	case $2 in
	pass) junit_body+="  <testcase name=\"$name\"/>"$'\n' ;;
	skip) junit_body+="  <testcase name=\"$name\"><skipped message=\"$msg\"/></testcase>"$'\n' ;;
	*) junit_body+="  <testcase name=\"$name\"><failure message=\"$msg\"/></testcase>"$'\n' ;;
	esac
}

junit_write() {
	[ -n "$1" ] || return 0
	printf '<?xml version="1.0" encoding="UTF-8"?>\n<testsuite name="%s">\n%s</testsuite>\n' \
		"$2" "$junit_body" >"$1"
}
