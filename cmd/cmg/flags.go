package main

import (
	"errors"
	"flag"
)

// flagExit is the exit code for a flag parse error: 0 for -h, 2 otherwise.
func flagExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}
