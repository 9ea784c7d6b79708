// Package dataset reads user data for calibration and evaluation (the CLI's --data, --labels,
// --samples, --mean and --std) into scaled NCHW float32 tensors.
//
// It owns reading and decoding the formats below and must not know about models, graphs or
// pruning: the caller passes the model's input shape C×H×W in Options and gets a Set back.
//
// Formats (sniffed from the content, not the file name; any file may be gzip-compressed):
//
//   - IDX (MNIST style): uint8 images, magic 0x00000803, shape N×H×W, read as N×1×H×W and scaled
//     to [0,1]. H×W must equal the model's. A 3-channel model gets the grey plane replicated to
//     three channels, recorded in Set.Notes; any other channel count is an error.
//   - .npy: float32 (or float64, narrowed) used as stored, or uint8 scaled by 1/255; little-endian,
//     C order; shape N×C×H×W, or N×H×W meaning one channel. One-channel data for a 3-channel model
//     is replicated as for IDX.
//   - a folder of PNG and JPEG files (by extension, case-insensitive; other files and hidden
//     entries are ignored), found by a depth-first walk in sorted order. Each image is decoded,
//     converted to grey (luma 0.299R+0.587G+0.114B) or RGB according to Options.Channels, resized
//     to W×H with Catmull-Rom resampling (images already W×H are copied exactly) and scaled to
//     [0,1]. Files are decoded one at a time, so memory is bounded by the N×C×H×W floats kept.
//     When every image lies in a subfolder (root/<class>/…, the ImageFolder convention) and no
//     labels file is given, the labels are the indices of the sorted class folder names, recorded
//     in Set.Classes; a class folder without images is then an error.
//
// Labels (--labels) are IDX uint8 (magic 0x00000801) or a .npy integer vector. Their count must
// equal the number of images in the data before sampling; the kept samples keep their labels.
//
// Sampling (Options.Samples > 0): IDX and .npy keep the first N records in file order (MNIST-style
// files are already shuffled, and only those records are converted). A folder, whose sorted order
// groups classes together, keeps N files picked by a shuffle seeded with Options.Seed, in sorted
// order, and decodes only those. Asking for more samples than there are keeps them all.
//
// Normalisation (Options.Mean, Options.Std, one value per channel) is applied last:
// x = (x − mean[c]) / std[c]. A missing Mean means 0, a missing Std means 1.
//
// Size from the data: Options.Height and Width both 0 (a model whose spatial dims are symbolic)
// take the data's own size: an IDX or .npy file's H×W, or a folder's first image's in the sorted
// walk, to which the other images are resized.
//
// Sizes are bounded before anything is allocated for them: a Set holds at most half the memory
// available when it is loaded (and never more than 2^34 values), whatever a header claims; .npy
// headers are parsed by dataset/npy's ReadHeader, the one parser of the repository.
//
// Errors are one line, start with "data: " or "labels: " and name the file and the cause. No input
// bytes make the package panic; FuzzLoadIDX checks the IDX and .npy parsers.
package dataset
