package bad

import (
	crand "crypto/rand" // want `import of crypto/rand`
	randv1 "math/rand"
	"math/rand/v2"

	"github.com/google/uuid"
)

func random(xs []int) {
	_ = rand.IntN(10)                                                     // want `math/rand/v2.IntN uses the global random source`
	_ = rand.Int()                                                        // want `math/rand/v2.Int uses the global random source`
	_ = rand.Float64()                                                    // want `math/rand/v2.Float64 uses the global random source`
	_ = rand.N(10)                                                        // want `math/rand/v2.N uses the global random source`
	_ = rand.Perm(3)                                                      // want `math/rand/v2.Perm uses the global random source`
	rand.Shuffle(len(xs), func(i, j int) { xs[i], xs[j] = xs[j], xs[i] }) // want `math/rand/v2.Shuffle uses the global random source`
	_ = randv1.Intn(10)                                                   // want `math/rand.Intn uses the global random source`
	_ = randv1.Int63()                                                    // want `math/rand.Int63 uses the global random source`
	b := make([]byte, 8)
	_, _ = crand.Read(b) // want `crypto/rand.Read: crypto/rand is a global random source`
	_ = crand.Text()     // want `crypto/rand.Text`

	_ = uuid.New()                  // want `github.com/google/uuid.New draws from a global random source`
	_ = uuid.NewString()            // want `github.com/google/uuid.NewString draws`
	_ = uuid.Must(uuid.NewRandom()) // want `github.com/google/uuid.NewRandom draws`
	_, _ = uuid.NewV7()             // want `github.com/google/uuid.NewV7 draws`
}
