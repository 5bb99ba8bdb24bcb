#!/bin/bash
# Packaging, without touching the system: everything goes below $TMP.
# Covers:
#   make install DESTDIR=... lays out the binary, the man page, bash and zsh
#     completion, the two systemd units and the config file (0600); make
#     uninstall removes exactly that (an edited config stays);
#   --version names libbpf and libevent;
#   the man page renders (man -l) and names every command and every option
#     that --help lists; the bash completion offers them too;
#   systemd-analyze verify finds nothing wrong with the units (skipped, with
#     a message, where systemd-analyze is missing);
#   the shipped config file passes `check`;
#   the Debian package builds (dpkg-buildpackage -b, no lintian: `make deb`
#     runs that) and holds those files (SKIP_DEB=1 skips it).
. "$(dirname "$0")/../lib.sh"

DEST=$TMP/root
SBIN=$DEST/usr/sbin/sproxy-bpf
MAN8=$DEST/usr/share/man/man8/sproxy-bpf.8
UNITDIR=$DEST/usr/lib/systemd/system
BASHCOMP=$DEST/usr/share/bash-completion/completions/sproxy-bpf
ZSHCOMP=$DEST/usr/share/zsh/site-functions/_sproxy-bpf
CONF=$DEST/etc/sproxy-bpf/config
COMMANDS="attach check run tproxy rules doctor detach status top"
INSTALLED=("$SBIN" "$MAN8" "$BASHCOMP" "$ZSHCOMP" "$UNITDIR/sproxy-bpf.service"
	"$UNITDIR/sproxy-bpf@.service" "$CONF")

skip() { echo "skipped $TEST_NAME/$1 ($2)" >&2; }

# The long options --help lists (each at the start of an entry, not one
# named in passing, like another program's), one per line.
help_options() {
	"$ROOT/sproxy-bpf" --help | grep -oE '^ +(-[a-zA-Z], )?--[a-z][a-z0-9-]*' |
		grep -o -- '--[a-z][a-z0-9-]*' | sort -u
}

t_install() {
	make -s -C "$ROOT" install DESTDIR="$DEST" PREFIX=/usr >"$TMP/install.out" 2>"$TMP/install.err" ||
		{ WHY="make install failed: $(tail -n 2 "$TMP/install.err" | tr '\n' ' ')"; return 1; }
	local f
	for f in "${INSTALLED[@]}"; do
		expect "make install made no ${f#"$DEST"}" [ -f "$f" ] || return 1
	done
	expect "${SBIN#"$DEST"} is mode $(stat -c %a "$SBIN")" [ "$(stat -c %a "$SBIN")" = 755 ] || return 1
	expect "${CONF#"$DEST"} is mode $(stat -c %a "$CONF"), not 600 (it may hold passwords)" \
		[ "$(stat -c %a "$CONF")" = 600 ] || return 1
	expect "the units do not name /usr/sbin/sproxy-bpf" \
		grep -q '^ExecStart=/usr/sbin/sproxy-bpf attach' "$UNITDIR/sproxy-bpf@.service" || return 1
	expect "files besides the installed ones: $(find "$DEST" -type f | wc -l) files" \
		[ "$(find "$DEST" -type f | wc -l)" = ${#INSTALLED[@]} ]
}

t_version() {
	local v
	v=$("$SBIN" --version)
	expect "--version says '$v'" \
		eval '[[ $v =~ ^sproxy-bpf\ [0-9.]+\ \(built\ with\ libbpf\ v[0-9.]+,\ libevent\ [0-9] ]]'
}

t_man() {
	need man || return 1
	LC_ALL=C MANWIDTH=100 man --nh --nj -P cat -l "$MAN8" >"$TMP/man.txt" 2>"$TMP/man.err" ||
		{ WHY="man -l failed: $(tail -n 1 "$TMP/man.err")"; return 1; }
	local c o missing=""
	for c in $COMMANDS; do
		grep -q "sproxy-bpf $c" "$TMP/man.txt" || missing="$missing $c"
	done
	for o in $(help_options); do
		grep -q -- "$o\b" "$TMP/man.txt" || missing="$missing $o"
	done
	expect "the man page lacks:$missing" [ -z "$missing" ]
}

t_completion() {
	local o missing="" got
	[ -f /usr/share/bash-completion/bash_completion ] ||
		{ WHY="no /usr/share/bash-completion/bash_completion (apt-get install bash-completion)"; return 1; }
	# The commands, then each command's options: --help names some of
	# rules' and run's too.
	got=$(bash -c '. /usr/share/bash-completion/bash_completion; . "$1"; shift
		COMP_LINE="sproxy-bpf "; COMP_WORDS=(sproxy-bpf ""); COMP_CWORD=1
		COMP_POINT=${#COMP_LINE}; _sproxy_bpf; echo "${COMPREPLY[*]}"
		for c in "$@"; do
			COMP_LINE="sproxy-bpf $c --"; COMP_WORDS=(sproxy-bpf "$c" --); COMP_CWORD=2
			COMP_POINT=${#COMP_LINE}; _sproxy_bpf; echo "${COMPREPLY[*]}"
		done' _ "$BASHCOMP" $COMMANDS)
	for o in $COMMANDS $(help_options); do
		[[ " $(echo $got) " == *" $o "* ]] || missing="$missing $o"
	done
	expect "bash completion does not offer:$missing" [ -z "$missing" ] || return 1
	if command -v zsh >/dev/null; then
		expect "zsh cannot parse $ZSHCOMP" zsh -n "$ZSHCOMP"
	fi
}

# The installed units with the binary where DESTDIR put it (verify wants
# their commands to exist); the template as an instance.
t_units() {
	mkdir -p "$TMP/units"
	sed "s|/usr/sbin/sproxy-bpf|$SBIN|g" "$UNITDIR/sproxy-bpf.service" >"$TMP/units/sproxy-bpf.service"
	sed "s|/usr/sbin/sproxy-bpf|$SBIN|g" "$UNITDIR/sproxy-bpf@.service" >"$TMP/units/sproxy-bpf@1000.service"
	(cd "$TMP/units" && systemd-analyze verify --man=no sproxy-bpf.service sproxy-bpf@1000.service) \
		>"$TMP/verify.out" 2>&1
	local rc=$?
	expect "systemd-analyze verify (exit $rc): $(grep -v '^$' "$TMP/verify.out" | head -n 2 | tr '\n' ' ')" \
		[ $rc = 0 ] && ! grep -q 'sproxy-bpf' "$TMP/verify.out"
}

t_config_checks() {
	expect "the shipped config does not pass check: $("$SBIN" check --config "$CONF" 2>&1 | tail -n 1)" \
		eval '[ "$("$SBIN" check --config "$CONF" 2>&1)" = ok ]'
}

t_uninstall() {
	local left
	make -s -C "$ROOT" uninstall DESTDIR="$DEST" PREFIX=/usr >/dev/null 2>"$TMP/uninstall.err" ||
		{ WHY="make uninstall failed: $(tail -n 1 "$TMP/uninstall.err")"; return 1; }
	left=$(find "$DEST" -type f | sed "s|^$DEST||" | tr '\n' ' ')
	expect "make uninstall left: $left" [ -z "$left" ] || return 1
	# An admin's edits survive.
	make -s -C "$ROOT" install DESTDIR="$DEST" PREFIX=/usr >/dev/null 2>&1 || return 1
	echo 'json = true' >>"$CONF"
	make -s -C "$ROOT" uninstall DESTDIR="$DEST" PREFIX=/usr >/dev/null 2>&1
	left=$(find "$DEST" -type f | sed "s|^$DEST||" | tr '\n' ' ')
	expect "after uninstall with an edited config: '$left', want /etc/sproxy-bpf/config" \
		[ "$left" = "/etc/sproxy-bpf/config " ]
}

t_deb() {
	local src=$TMP/deb/sproxy-bpf deb list
	need dpkg-buildpackage dh || return 1
	mkdir -p "$src"
	(cd "$ROOT" && tar -c --exclude=./build --exclude=./.git --exclude='./skel/*.skel.h' \
		--exclude=./sproxy-bpf .) | tar -x -C "$src" || return 1
	(cd "$src" && timeout 600 dpkg-buildpackage -us -uc -b) >"$TMP/deb.log" 2>&1 ||
		{ WHY="dpkg-buildpackage failed: $(tail -n 3 "$TMP/deb.log" | tr '\n' ' ')"; return 1; }
	deb=$(ls "$TMP"/deb/sproxy-bpf_*.deb 2>/dev/null | head -n 1)
	expect "no .deb built" [ -n "$deb" ] || return 1
	list=$(dpkg -c "$deb")
	local f missing=""
	for f in ./usr/sbin/sproxy-bpf ./usr/share/man/man8/sproxy-bpf.8.gz \
		./lib/systemd/system/sproxy-bpf.service ./lib/systemd/system/sproxy-bpf@.service \
		./usr/share/bash-completion/completions/sproxy-bpf \
		./usr/share/zsh/vendor-completions/_sproxy-bpf ./etc/sproxy-bpf/config; do
		grep -q " $f\$" <<<"$list" || missing="$missing $f"
	done
	expect "the .deb lacks:$missing" [ -z "$missing" ] || return 1
	expect "the .deb's config is not -rw-------" grep -q '^-rw------- .* ./etc/sproxy-bpf/config$' <<<"$list" || return 1
	expect "the config is no conffile" eval 'dpkg-deb -e "$deb" "$TMP/deb/ctl" && grep -qx /etc/sproxy-bpf/config "$TMP/deb/ctl/conffiles"' || return 1
	expect "Depends lacks libcap-ng: $(dpkg-deb -f "$deb" Depends)" eval 'dpkg-deb -f "$deb" Depends | grep -q libcap-ng'
}

run_case install-layout t_install
run_case version-names-libraries t_version
run_case man-page-every-command-and-option t_man
run_case completion-every-command-and-option t_completion
if command -v systemd-analyze >/dev/null; then
	run_case systemd-units-verify t_units
else
	skip systemd-units-verify "no systemd-analyze here: apt-get install systemd"
fi
run_case shipped-config-checks-ok t_config_checks
run_case uninstall-removes-what-install-put t_uninstall
if [ "${SKIP_DEB:-0}" = 1 ]; then
	skip deb-builds-with-the-files "SKIP_DEB=1"
else
	run_case deb-builds-with-the-files t_deb
fi
finish
