# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# bash completion for ephport(8). bash-completion loads it on demand from its completions
# directory ('make install' puts it there); it uses bash-completion's helpers.
# The option lists follow 'ephport COMMAND --help' (tests/e2e/test_completion.py checks).

_ephport()
{
    local cur prev words cword split
    _init_completion -s || return

    local commands='agent query guard'
    # long options only are offered; the short ones (-i -o -v -j -n -d -s -h) are understood
    local agent_opts='--interval --warn-at --critical-at --clear-margin --hold --output
        --output-buffer --guard --deny-at --cgroup-root --exempt --quota --audit
        --deny-errno --max-tuples --tuple-idle --host
        --metrics-addr --metrics-top --verbose --help'
    local query_opts='--json --netns --dst --src --help'
    local guard_opts='--json --help'

    if ((cword == 1)); then
        COMPREPLY=($(compgen -W "$commands --version --help" -- "$cur"))
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
        --deny-errno)
            COMPREPLY=($(compgen -W 'eaddrnotavail eperm' -- "$cur"))
            return
            ;;
        --interval | -i | --warn-at | --critical-at | --clear-margin | --hold | \
            --output-buffer | --deny-at | --quota | --max-tuples | --tuple-idle | \
            --host | --metrics-addr | --metrics-top)
            # a number, a name or an address: nothing to offer
            return
            ;;
        esac
        $split && return
        COMPREPLY=($(compgen -W "$agent_opts" -- "$cur"))
        ;;
    query)
        case $prev in
        --netns | -n | --dst | -d | --src | -s)
            return
            ;;
        esac
        $split && return
        COMPREPLY=($(compgen -W "$query_opts" -- "$cur"))
        ;;
    guard)
        if ((cword == 2)); then
            COMPREPLY=($(compgen -W 'status --help' -- "$cur"))
        elif [[ ${words[2]} == status ]]; then
            COMPREPLY=($(compgen -W "$guard_opts" -- "$cur"))
        fi
        ;;
    esac
} &&
    complete -F _ephport ephport
