# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# bash completion for ephport(8). bash-completion loads it on demand from its completions
# directory ('make install' puts it there); it uses bash-completion's helpers.
# Written by 'ephport completion bash' from the option tables that 'ephport COMMAND
# --help' prints ('make completion'): do not edit. Long options only are offered;
# the short ones are understood.

_ephport()
{
    local cur prev words cword split
    _init_completion -s || return

    if ((cword == 1)); then
        COMPREPLY=($(compgen -W 'agent query top guard --version --help' -- "$cur"))
        return
    fi

    case ${words[1]} in
    agent)
        case $prev in
        --output | -o)
            _filedir
            return
            ;;
        --cgroup-root | --exempt)
            _filedir -d
            return
            ;;
        --interval | -i | --warn-at | --critical-at | --clear-margin | --hold | \
            --output-buffer | --deny-at | --quota | --spread | --spread-at | --nat-range | \
            --nat-warn-at | --nat-critical-at | --max-tuples | --tuple-idle | --host | \
            --metrics-addr | --metrics-top)
            # a number, a name or an address: nothing to offer
            return
            ;;
        --deny-errno)
            COMPREPLY=($(compgen -W 'eaddrnotavail eperm' -- "$cur"))
            return
            ;;
        esac
        $split && return
        COMPREPLY=($(compgen -W '--interval --warn-at --critical-at --clear-margin --hold
            --output --output-buffer --guard --deny-at --cgroup-root --exempt
            --exempt-system --quota --audit --deny-errno --spread --spread-at --no-nat
            --nat-range --nat-warn-at --nat-critical-at --max-tuples --tuple-idle --host
            --metrics-addr --metrics-top --verbose --help' -- "$cur"))
        ;;
    query)
        case $prev in
        --netns | -n | --dst | -d | --src | -s)
            # a number, a name or an address: nothing to offer
            return
            ;;
        esac
        $split && return
        COMPREPLY=($(compgen -W '--json --netns --dst --src --help' -- "$cur"))
        ;;
    top)
        case $prev in
        --interval | -i | --netns | -n | --dst | -d)
            # a number, a name or an address: nothing to offer
            return
            ;;
        esac
        $split && return
        COMPREPLY=($(compgen -W '--interval --netns --dst --json --help' -- "$cur"))
        ;;
    guard)
        if ((cword == 2)); then
            COMPREPLY=($(compgen -W 'status --help' -- "$cur"))
            return
        fi
        [[ ${words[2]} == status ]] || return
        $split && return
        COMPREPLY=($(compgen -W '--json --help' -- "$cur"))
        ;;
    esac
} &&
    complete -F _ephport ephport
