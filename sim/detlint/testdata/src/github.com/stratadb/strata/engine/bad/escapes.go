package bad

import "time"

func escapes() {
	// want +1 `//strata:nondeterministic needs a reason after it`
	//strata:nondeterministic
	_ = time.Now() // want `time.Now`

	// want +1 `malformed escape comment`
	// strata:nondeterministic the space makes this an ordinary comment
	_ = time.Now() // want `time.Now`

	// want +1 `suppresses no finding on its line or the next`
	//strata:nondeterministic reason on the line above, but two lines up

	_ = time.Now() // want `time.Now`
}
