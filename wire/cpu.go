package wire

import (
	"runtime"

	"golang.org/x/sys/cpu"
)

// hasAESHardware reports whether this machine computes AES-GCM with AES
// and carry-less multiplication instructions, as Go's crypto/aes then
// does (FlagAES). Without them, Go's AES is slower than ChaCha20, and not
// constant-time.
var hasAESHardware = runtime.GOARCH == "amd64" && cpu.X86.HasAES && cpu.X86.HasPCLMULQDQ ||
	runtime.GOARCH == "arm64" && cpu.ARM64.HasAES && cpu.ARM64.HasPMULL
