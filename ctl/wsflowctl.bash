# bash completion for wsflowctl(8); installed as
# $(PREFIX)/share/bash-completion/completions/wsflowctl.
#
# Commands, options and modes; stream ids and names, and producer names
# for start, come from the daemon itself ("wsflowctl -j streams", on the
# control socket that the line names with -s).

# "ID NAME ROLE" per stream; configured producers that are not running
# too where the daemon lists them (streams -a).
_wsflowctl_rows()
{
	local ctl=$1 sock=$2 out obj id name role
	local -a s=()

	[[ -n $sock ]] && s=(-s "$sock")
	out=$("$ctl" "${s[@]}" -j streams -a 2>/dev/null) ||
	    out=$("$ctl" "${s[@]}" -j streams 2>/dev/null) || return
	# json-c prints one line: split it between the rows.
	while IFS= read -r obj; do
		[[ $obj =~ \"id\":([0-9]+) ]] || continue
		id=${BASH_REMATCH[1]}
		name=- role=-
		[[ $obj =~ \"name\":\"([^\"]+)\" ]] && name=${BASH_REMATCH[1]}
		[[ $obj =~ \"role\":\"([a-z]+)\" ]] && role=${BASH_REMATCH[1]}
		printf '%s %s %s\n' "$id" "$name" "$role"
	done < <(printf '%s\n' "$out" | sed 's/},{/}\n{/g')
}

_wsflowctl()
{
	# The line itself, not COMP_WORDS: those split ws://host at ':'.
	local line=${COMP_LINE:0:COMP_POINT}
	local -a words=()
	local cur prev ctl sock= cmd= url= w i nargs=0 list=
	local commands="status streams show start stop digests reload run watch help"
	local options="-j --json -s --socket -h --help -V --version"

	read -ra words <<<"$line"
	[[ -z $line || $line == *[[:space:]] ]] && words+=("")
	((${#words[@]} >= 2)) || return
	cur=${words[-1]}
	prev=${words[-2]}
	ctl=${words[0]}
	for ((i = 1; i < ${#words[@]} - 1; i++)); do
		w=${words[i]}
		case $w in
		-s|--socket)
			((i++))
			sock=${words[i]}
			continue
			;;
		--socket=*)
			sock=${w#--socket=}
			continue
			;;
		-*)
			continue
			;;
		esac
		if [[ -z $cmd ]]; then
			cmd=$w
			continue
		fi
		((nargs++))
		[[ -z $url && $w == *://* ]] && url=$w
	done
	# A prefix is a command, as the daemon's parser has it: "sto" stop.
	for w in $commands; do
		[[ -n $cmd && $w == "$cmd"* ]] && { cmd=$w; break; }
	done

	case $prev in
	-s|--socket|--receiver)
		COMPREPLY=($(compgen -f -- "$cur"))
		return
		;;
	--mode)
		list="producer streaming frame message"
		;;
	--bytes|--rate)
		list="1M 100M 1G"
		;;
	--duration)
		list="10s 1m 1h"
		;;
	--interval)
		list="0.5 1 2s 10s"
		;;
	--parallel)
		list="4 16 64"
		;;
	--name|--count)
		return
		;;
	*)
		if [[ -z $cmd && $cur == -* ]]; then
			list=$options
		elif [[ -z $cmd ]]; then
			list=$commands
		elif [[ $cmd == watch ]]; then
			list="--interval --count --bits"
		elif [[ $cmd == streams ]]; then
			list="-a --all --bits"
		elif [[ $cmd == show ]] && ((nargs > 0)); then
			list="--bits"
		elif [[ $cmd == start && -n $url ]]; then
			list="--mode --bytes --duration --rate --name"
		elif [[ $cmd == run ]] && ((nargs > 0)); then
			list="--parallel --bytes --duration --rate --mode"
			list+=" --interval --name --bits --receiver"
		elif [[ $cmd == start || $cmd == run ]] && ((nargs == 0)); then
			list="ws:// wss:// $(_wsflowctl_rows "$ctl" "$sock" |
			    while read -r id w role; do
				[[ $role == producer ]] && printf '%s ' "$w"
			    done)"
		elif [[ $cmd == show || $cmd == digests || $cmd == stop ]] &&
		    ((nargs == 0)); then
			[[ $cmd == stop ]] && list=all
			list+=" $(_wsflowctl_rows "$ctl" "$sock" |
			    while read -r id w role; do
				printf '%s ' "$id"
				[[ $w != - ]] && printf '%s ' "$w"
			    done)"
		fi
		;;
	esac
	COMPREPLY=($(compgen -W "$list" -- "$cur"))
	# bash puts back only what follows the last ':' of the word.
	if [[ $cur == *:* ]]; then
		for i in "${!COMPREPLY[@]}"; do
			COMPREPLY[i]=${COMPREPLY[i]#"${cur%"${cur##*:}"}"}
		done
	fi
	[[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} == *// ]] &&
	    compopt -o nospace 2>/dev/null
	return 0
}

complete -F _wsflowctl wsflowctl
