package onnx

// filelimits.go: bounds on what a model can make this package allocate. A model file is at most
// 2 GiB (protobuf's limit, see readLimited), but a few bytes in it can claim far more: dims whose
// product is 10^18 elements, an external data reference to a huge file, int8 data the IR widens to
// int64. Each is checked against what is there and what memory can hold before anything is
// allocated for it, so that a bad model is an error naming the tensor, not an out-of-memory crash.

import (
	"fmt"
	"math"

	"github.com/chanopt/chanopt/onnx/pb"
)

// memoryCheckMin is the smallest allocation checkMemory looks at: below it asking the system what
// is available costs more than it can save.
const memoryCheckMin = 64 << 20

// memoryUnknown bounds allocations where the available memory cannot be read (see
// memoryAvailable).
const memoryUnknown = 1 << 40

// checkMemory refuses to allocate n bytes for what when that is more than the memory available.
func checkMemory(n int64, what string) error {
	if n < memoryCheckMin {
		return nil
	}
	avail := memoryAvailable()
	if avail <= 0 {
		avail = memoryUnknown
	}
	if n > avail {
		return fmt.Errorf("%s needs %s of memory, more than the %s available", what, humanBytes(n), humanBytes(avail))
	}
	return nil
}

// humanBytes writes a size in bytes with a decimal unit ("1.5 GB").
func humanBytes(n int64) string {
	switch {
	case n >= 1e12:
		return fmt.Sprintf("%.1f TB", float64(n)/1e12)
	case n >= 1e9:
		return fmt.Sprintf("%.1f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	}
	return fmt.Sprintf("%d bytes", n)
}

// tensorElements returns the number of elements tp's dims describe, after checking that no dim is
// negative, that their product does not overflow, and, for the types the IR decodes, that tp holds
// exactly that many values (in raw_data or in its typed field) and that the IR's copy of them fits
// in memory. Errors name the tensor.
func tensorElements(tp *pb.TensorProto) (int64, error) {
	name := tp.GetName()
	n := int64(1)
	for _, d := range tp.Dims {
		if d < 0 {
			return 0, fmt.Errorf("tensor %q: negative dim %d in %v", name, d, tp.Dims)
		}
		if d != 0 && n > math.MaxInt64/d {
			return 0, fmt.Errorf("tensor %q: dims %v hold more elements than a 64-bit count", name, tp.Dims)
		}
		n *= d
	}
	typ := DataType(tp.GetDataType())
	size := int64(elemSize(typ))
	if size == 0 {
		return n, nil // strings, complex: not decoded, nothing allocated
	}
	if raw := tp.RawData; raw != nil {
		if have := int64(len(raw)); have%size != 0 || have/size != n {
			return 0, fmt.Errorf("tensor %q: raw data has %d bytes, want %d values of %d bytes for %v %v", name, have, n, size, typ, tp.Dims)
		}
		if typ == Float {
			return n, nil // viewed in place, or one copy of bytes already in memory
		}
	} else if have := typedValues(tp, typ); have != n {
		return 0, fmt.Errorf("tensor %q: has %d values, want %d for dims %v", name, have, n, tp.Dims)
	}
	irSize := int64(8) // Ints
	if typ == Float || typ == Double || typ == Float16 || typ == BFloat16 {
		irSize = 4 // Floats
	}
	if err := checkMemory(n*irSize, fmt.Sprintf("tensor %q (%v %v)", name, typ, tp.Dims)); err != nil {
		return 0, err
	}
	return n, nil
}

// typedValues counts the values of tp in the typed field its type uses (ONNX keeps float16,
// bfloat16 and the small integers in int32_data, unsigned 32 and 64-bit ones in uint64_data).
func typedValues(tp *pb.TensorProto, typ DataType) int64 {
	switch typ {
	case Float:
		return int64(len(tp.FloatData))
	case Double:
		return int64(len(tp.DoubleData))
	case Int64:
		return int64(len(tp.Int64Data))
	case Uint32, Uint64:
		return int64(len(tp.Uint64Data))
	}
	return int64(len(tp.Int32Data))
}
