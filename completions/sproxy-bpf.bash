# bash completion for sproxy-bpf
_sproxy_bpf_cgroups()
{
	local mnt cur=$1
	mnt=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts 2>/dev/null)
	[ -n "$mnt" ] || return
	if [[ $cur == /* ]]; then
		compgen -d -- "$cur"
	else
		(cd "$mnt" 2>/dev/null && compgen -d -- "$cur")
	fi
}

_sproxy_bpf()
{
	local cur prev words cword cmd
	_init_completion || return

	local cmds="attach check run tproxy rules doctor detach status top"
	local opts="--listen --bypass --log --json --verbose --all --map-size
		--udp-flows --udp-flows-per-process --udp-timeout --netns --connect-timeout --relay --threads --mark --reattach
		--tag --header-timeout --header-budget --idle-timeout --config --rule
		--sniff --sniff-override --sniff-timeout --fast-path --tls-ports --to --proxy-cgroup --upstream --udp-over-http --resolver --disable-fakeip --fakeip-range
		--fakeip-store --fakeip-exclude --fakeip-ttl --fakeip-per-process
		--allow-private-answers --user --no-drop --pin --control-dir --help"

	if [ "$cword" -eq 1 ]; then
		COMPREPLY=($(compgen -W "$cmds --help --version" -- "$cur"))
		return
	fi
	cmd=${words[1]}

	case $prev in
	--log | --config | --fakeip-store)
		_filedir
		return ;;
	--user)
		COMPREPLY=($(compgen -u -- "$cur"))
		return ;;
	--relay)
		COMPREPLY=($(compgen -W "splice copy" -- "$cur"))
		return ;;
	--tag)
		COMPREPLY=($(compgen -W "off on" -- "$cur"))
		return ;;
	--udp-over-http)
		COMPREPLY=($(compgen -W "reject direct" -- "$cur"))
		return ;;
	--backend)
		COMPREPLY=($(compgen -W "nft iptables" -- "$cur"))
		return ;;
	--netns)
		COMPREPLY=($(compgen -W "all current" -- "$cur"))
		return ;;
	--sniff | --sniff-override | --fast-path)
		COMPREPLY=($(compgen -W "on off" -- "$cur"))
		return ;;
	--proxy-cgroup)
		COMPREPLY=($(_sproxy_bpf_cgroups "$cur"))
		return ;;
	--pin | --control-dir)
		_filedir -d
		return ;;
	--interface)
		_available_interfaces
		return ;;
	--listen | -l | --bypass | -b | --map-size | --udp-flows | --udp-timeout | \
	--connect-timeout | --mark | --header-timeout | --header-budget | \
	--idle-timeout | --rule | --upstream | --resolver | --fakeip-range | \
	--udp-flows-per-process | --sniff-timeout | --tls-ports | --to | \
	--fakeip-exclude | --fakeip-ttl | --fakeip-per-process | --port | --table | \
	--cidr | --pid | --interval | -n | --daemon-mark | --socket | --cgroup-parent)
		return ;;
	esac

	case $cmd in
	rules)
		opts="--print --apply --remove --port --mark --daemon-mark --table
			--interface --cidr --local --ipv6 --backend --help" ;;
	doctor)
		opts="--pid --port --mark --table --ipv6 --help" ;;
	detach)
		opts="--pin --help" ;;
	status)
		opts="--json --pid --socket --control-dir --help" ;;
	top)
		opts="-n --count -i --interval --pid --socket --control-dir --help" ;;
	run)
		opts="$opts --cgroup-parent" ;;
	esac

	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$opts" -- "$cur"))
	elif [ "$cmd" = run ] && [[ " ${words[*]:2:cword-2} " == *" -- "* ]]; then
		_command_offset "$(($(printf '%s\n' "${words[@]}" | grep -n -x -- -- | head -n 1 | cut -d: -f1)))"
	else
		case $cmd in
		attach | check | doctor | detach)
			COMPREPLY=($(_sproxy_bpf_cgroups "$cur"))
			compopt -o filenames 2>/dev/null ;;
		esac
	fi
} &&
	complete -F _sproxy_bpf sproxy-bpf
