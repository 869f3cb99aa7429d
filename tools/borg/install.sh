#!/usr/bin/env bash
# Unpacks borg 1.4 from Debian's bookworm-backports into $1 (make borg), to
# run beside Debian's own borg 1.2 against the system's Python and libraries.
# apt reads the backports suite from a private list in $1, so the machine's
# sources and installed packages stay as they are. PyPI is not reachable here.
set -euo pipefail
dest=$1
pkg=borgbackup
version=1.4.0-4~bpo12+1
state=$dest/apt
rm -rf "$dest"
mkdir -p "$state/lists/partial" "$state/cache/archives/partial" "$dest/root"
# The backports suite lives beside bookworm on the machine's own Debian
# mirror: take that mirror from apt's sources (deb822 or one-line form).
shopt -s nullglob
sources=(/etc/apt/sources.list.d/*.sources)
[ -f /etc/apt/sources.list ] && sources+=(/etc/apt/sources.list)
mirror=""
if [ ${#sources[@]} -gt 0 ]; then
	mirror=$(awk '
		FNR == 1 { uri = "" }
		/^URIs:/ { uri = $2 }
		/^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm" && uri != "") { print uri; exit } }
		/^deb / && $3 == "bookworm" { print $2; exit }
	' "${sources[@]}")
fi
[ -n "$mirror" ] || { echo "no Debian bookworm source in /etc/apt: cannot find the bookworm-backports suite" >&2; exit 1; }
echo "deb $mirror bookworm-backports main" >"$state/sources.list"
apt_opts=(-q -o "Dir::Etc::SourceList=$state/sources.list" -o Dir::Etc::SourceParts=/nonexistent
	-o "Dir::State::Lists=$state/lists" -o "Dir::Cache=$state/cache" -o APT::Sandbox::User=root)
apt-get "${apt_opts[@]}" update >"$state/update.log" 2>&1 || { cat "$state/update.log" >&2; exit 1; }
(cd "$state" && apt-get "${apt_opts[@]}" download "$pkg=$version" >download.log 2>&1) ||
	{ cat "$state/download.log" >&2; exit 1; }
dpkg-deb -x "$state/${pkg}_${version}_$(dpkg --print-architecture).deb" "$dest/root"
cp "$dest/root/usr/share/doc/borgbackup/copyright" "$dest/COPYRIGHT"
# The entry point: Debian's python3 (never a pyenv one on PATH), isolated
# (-I: neither the working directory nor PYTHONPATH on sys.path), with the
# unpacked package first on sys.path, so no PYTHONPATH reaches the commands
# borg starts (with-lock).
cat >"$dest/borg" <<'SH'
#!/bin/sh
d=$(dirname "$(readlink -f "$0")")/root/usr/lib/python3/dist-packages
exec /usr/bin/python3 -I -c 'import sys; sys.path.insert(0, sys.argv.pop(1)); sys.argv[0] = "borg"
from borg.archiver import main; main()' "$d" "$@"
SH
chmod +x "$dest/borg"
rm -rf "$state"
got=$("$dest/borg" --version)
[ "$got" = "borg 1.4.0" ] || { echo "unpacked borg says '$got', want 'borg 1.4.0'" >&2; exit 1; }
echo "$got in $dest"
