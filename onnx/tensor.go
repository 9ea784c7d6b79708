package onnx

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"math"
	"slices"
	"unsafe"

	"github.com/chanopt/chanopt/onnx/pb"
	"google.golang.org/protobuf/proto"
)

// elemSize is the byte width of a type's raw_data element, 0 when the IR cannot decode it.
func elemSize(d DataType) int {
	switch d {
	case Float, Int32, Uint32:
		return 4
	case Double, Int64, Uint64:
		return 8
	case Float16, BFloat16, Int16, Uint16:
		return 2
	case Int8, Uint8, Bool:
		return 1
	}
	return 0
}

// TensorFromProto decodes a TensorProto into the IR. External data must already be in raw_data.
func TensorFromProto(tp *pb.TensorProto) (*Tensor, error) {
	t := &Tensor{Name: tp.GetName(), Type: DataType(tp.GetDataType()), Dims: append([]int64(nil), tp.Dims...), Source: tp}
	if tp.GetDataLocation() == pb.TensorProto_EXTERNAL && tp.RawData == nil {
		return nil, fmt.Errorf("tensor %q: external data was not loaded", t.Name)
	}
	if tp.Segment != nil {
		return nil, fmt.Errorf("tensor %q: segmented tensors are not supported", t.Name)
	}
	n, err := tensorElements(tp) // dims, values present and memory checked: the copies below fit
	if err != nil {
		return nil, err
	}
	raw := tp.RawData
	size := elemSize(t.Type)
	le := binary.LittleEndian
	switch t.Type {
	case Float:
		if raw != nil {
			if f, ok := floatView(raw); ok {
				t.Floats = f // the source's own bytes: see Tensor
				break
			}
			t.Floats = make([]float32, n)
			if littleEndian {
				copy(floatBytes(t.Floats), raw) // the wire format is little-endian, as is this machine
			} else {
				for i := range t.Floats {
					t.Floats[i] = math.Float32frombits(le.Uint32(raw[4*i:]))
				}
			}
		} else {
			t.Floats = make([]float32, n)
			copy(t.Floats, tp.FloatData)
		}
	case Double:
		t.Floats = make([]float32, n)
		if raw != nil {
			for i := range t.Floats {
				t.Floats[i] = float32(math.Float64frombits(le.Uint64(raw[8*i:])))
			}
		} else {
			for i, v := range tp.DoubleData {
				t.Floats[i] = float32(v)
			}
		}
	case Float16, BFloat16:
		conv := halfToFloat
		if t.Type == BFloat16 {
			conv = bfloatToFloat
		}
		t.Floats = make([]float32, n)
		if raw != nil {
			for i := range t.Floats {
				t.Floats[i] = conv(le.Uint16(raw[2*i:]))
			}
		} else {
			for i, v := range tp.Int32Data {
				t.Floats[i] = conv(uint16(v))
			}
		}
	case Int64:
		t.Ints = make([]int64, n)
		if raw != nil {
			for i := range t.Ints {
				t.Ints[i] = int64(le.Uint64(raw[8*i:]))
			}
		} else {
			copy(t.Ints, tp.Int64Data)
		}
	case Uint32, Uint64:
		t.Ints = make([]int64, n)
		if raw != nil {
			for i := range t.Ints {
				if size == 4 {
					t.Ints[i] = int64(le.Uint32(raw[4*i:]))
				} else {
					t.Ints[i] = int64(le.Uint64(raw[8*i:]))
				}
			}
		} else {
			for i, v := range tp.Uint64Data {
				t.Ints[i] = int64(v)
			}
		}
	case Int32, Int16, Int8, Uint8, Uint16, Bool:
		t.Ints = make([]int64, n)
		if raw != nil {
			for i := range t.Ints {
				switch t.Type {
				case Int32:
					t.Ints[i] = int64(int32(le.Uint32(raw[4*i:])))
				case Int16:
					t.Ints[i] = int64(int16(le.Uint16(raw[2*i:])))
				case Uint16:
					t.Ints[i] = int64(le.Uint16(raw[2*i:]))
				case Int8:
					t.Ints[i] = int64(int8(raw[i]))
				default:
					t.Ints[i] = int64(raw[i])
				}
			}
		} else {
			for i, v := range tp.Int32Data {
				t.Ints[i] = int64(v)
			}
		}
	}
	if !rawFloatSource(tp) {
		t.sum = t.checksum()
	}
	return t, nil
}

// rawFloatSource reports whether tp is a float32 tensor in raw_data on a little-endian machine: then
// the IR's Floats hold exactly tp's bytes, and Unchanged compares them with raw_data directly
// instead of through a checksum taken at import (which would cost a pass over every weight).
func rawFloatSource(tp *pb.TensorProto) bool {
	return littleEndian && tp.RawData != nil && DataType(tp.GetDataType()) == Float
}

// floatView returns raw's bytes as float32 values without copying: on a little-endian machine, when
// raw is not empty and starts at a multiple of 4 (ReadFile gives every float32 raw_data such an
// address). The capacity is the length, so an append copies.
func floatView(raw []byte) ([]float32, bool) {
	p := unsafe.SliceData(raw)
	if !littleEndian || len(raw) == 0 || len(raw)%4 != 0 || uintptr(unsafe.Pointer(p))%4 != 0 {
		return nil, false
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(p)), len(raw)/4), true
}

// checksumSeed is fixed per process: checksums are only compared within one run.
var checksumSeed = maphash.MakeSeed()

// checksum hashes the tensor's type, dims and decoded data (maphash runs at memory speed, which
// matters for 100 MB of weights).
func (t *Tensor) checksum() uint64 {
	var h maphash.Hash
	h.SetSeed(checksumSeed)
	var b [8]byte
	put := func(v uint64) {
		binary.LittleEndian.PutUint64(b[:], v)
		h.Write(b[:])
	}
	put(uint64(t.Type))
	put(uint64(len(t.Dims)))
	for _, d := range t.Dims {
		put(uint64(d))
	}
	put(uint64(len(t.Floats)))
	h.Write(floatBytes(t.Floats))
	put(uint64(len(t.Ints)))
	if len(t.Ints) > 0 {
		h.Write(unsafe.Slice((*byte)(unsafe.Pointer(&t.Ints[0])), 8*len(t.Ints)))
	}
	return h.Sum64()
}

// littleEndian reports the byte order of this machine.
var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// floatBytes views a float32 slice as its bytes.
func floatBytes(f []float32) []byte {
	if len(f) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&f[0])), 4*len(f))
}

// Unchanged reports whether the tensor still holds what its source proto holds, so that the
// source can be written as it is. For float32 raw_data sources the data is compared with raw_data
// itself: at no cost when Floats is still the view of raw_data that import made (changes made in
// place are then changes of raw_data too), byte by byte otherwise (copies, clones, re-decoded
// data). Other sources are compared through the checksum taken at import.
func (t *Tensor) Unchanged() bool {
	src := t.Source
	if src == nil || t.Name != src.GetName() {
		return false
	}
	if !rawFloatSource(src) {
		return t.checksum() == t.sum
	}
	if t.Type != Float || t.Ints != nil || t.Floats == nil || !slices.Equal(t.Dims, src.Dims) {
		return false
	}
	b := floatBytes(t.Floats)
	if len(b) != len(src.RawData) {
		return false
	}
	return len(b) == 0 || unsafe.SliceData(b) == unsafe.SliceData(src.RawData) || bytes.Equal(b, src.RawData)
}

// ToProto encodes the tensor, reusing the source proto when nothing changed.
func (t *Tensor) ToProto() *pb.TensorProto {
	if t.Unchanged() {
		return t.Source
	}
	if t.Floats == nil && t.Ints == nil && t.Source != nil {
		// A type the IR does not decode (strings, complex): only the name can have changed.
		c := proto.Clone(t.Source).(*pb.TensorProto)
		c.Name = proto.String(t.Name)
		return c
	}
	tp := &pb.TensorProto{Dims: append([]int64(nil), t.Dims...), DataType: proto.Int32(int32(t.Type)), Name: proto.String(t.Name)}
	if t.Source != nil && t.Source.DocString != nil {
		tp.DocString = t.Source.DocString
	}
	n := len(t.Floats)
	if t.Ints != nil {
		n = len(t.Ints)
	}
	size := elemSize(t.Type)
	raw := make([]byte, n*size)
	le := binary.LittleEndian
	for i := 0; i < n; i++ {
		switch t.Type {
		case Float:
			if littleEndian {
				copy(raw, floatBytes(t.Floats))
				i = n
				continue
			}
			le.PutUint32(raw[4*i:], math.Float32bits(t.Floats[i]))
		case Double:
			le.PutUint64(raw[8*i:], math.Float64bits(float64(t.Floats[i])))
		case Float16:
			le.PutUint16(raw[2*i:], floatToHalf(t.Floats[i]))
		case BFloat16:
			le.PutUint16(raw[2*i:], floatToBfloat(t.Floats[i]))
		case Int64, Uint64:
			le.PutUint64(raw[8*i:], uint64(t.Ints[i]))
		case Int32, Uint32:
			le.PutUint32(raw[4*i:], uint32(t.Ints[i]))
		case Int16, Uint16:
			le.PutUint16(raw[2*i:], uint16(t.Ints[i]))
		default:
			raw[i] = byte(t.Ints[i])
		}
	}
	tp.RawData = raw
	return tp
}

// NewFloatTensor makes a float32 tensor.
func NewFloatTensor(name string, dims []int64, data []float32) *Tensor {
	return &Tensor{Name: name, Type: Float, Dims: append([]int64(nil), dims...), Floats: data}
}

// NewIntTensor makes an int64 tensor.
func NewIntTensor(name string, dims []int64, data []int64) *Tensor {
	return &Tensor{Name: name, Type: Int64, Dims: append([]int64(nil), dims...), Ints: data}
}

func halfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0 && mant == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: renormalise
		e := uint32(127 - 15 + 1)
		for mant&0x400 == 0 {
			mant <<= 1
			e--
		}
		mant &= 0x3ff
		return math.Float32frombits(sign | e<<23 | mant<<13)
	case exp == 0x1f:
		return math.Float32frombits(sign | 0xff<<23 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

func floatToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23&0xff) - 127 + 15
	mant := b & 0x7fffff
	switch {
	case b&0x7fffffff > 0x7f800000: // NaN
		return sign | 0x7e00
	case exp >= 0x1f:
		return sign | 0x7c00
	case exp <= 0:
		if exp < -10 {
			return sign
		}
		mant |= 0x800000
		shift := uint32(14 - exp)
		half := uint16(mant >> shift)
		if mant>>(shift-1)&1 != 0 && (mant&(1<<(shift-1)-1) != 0 || half&1 != 0) {
			half++
		}
		return sign | half
	}
	half := sign | uint16(exp)<<10 | uint16(mant>>13)
	if mant&0x1000 != 0 && (mant&0xfff != 0 || half&1 != 0) {
		half++ // round to nearest even; a carry into the exponent is correct
	}
	return half
}

func bfloatToFloat(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

func floatToBfloat(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40
	}
	return uint16((b + 0x7fff + (b>>16)&1) >> 16)
}
