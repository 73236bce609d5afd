// Package jpeg decodes JPEG images with libjpeg-turbo, the library Pillow
// decodes with, set as Pillow sets it (the accurate integer inverse DCT,
// "fancy" upsampling of subsampled chroma, libjpeg's own colour
// conversion), so that the pixels are Pillow's bit for bit. It is a small
// cgo layer: one C call reads the header, one decodes the whole image into
// Go memory; no C type leaves the package.
//
// Why libjpeg-turbo and not image/jpeg: Go's decoder has another inverse
// DCT and no fancy upsampling (values differ from Pillow's by 1-3 levels,
// which moves the model's logits), and it is slower than libjpeg-turbo's
// SIMD code.
package jpeg

/*
#cgo LDFLAGS: -ljpeg
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <jpeglib.h>
#include <jerror.h>

typedef struct {
	struct jpeg_error_mgr pub;
	jmp_buf jump;
	int truncated;
	char msg[JMSG_LENGTH_MAX];
} pp_jpeg_error;

static void pp_jpeg_exit(j_common_ptr c) {
	pp_jpeg_error *e = (pp_jpeg_error *)c->err;
	(*c->err->format_message)(c, e->msg);
	longjmp(e->jump, 1);
}

// Warnings are ignored as Pillow ignores them, except running out of data:
// libjpeg then pads the image with grey, Pillow reports a truncated file.
static void pp_jpeg_emit(j_common_ptr c, int level) {
	pp_jpeg_error *e = (pp_jpeg_error *)c->err;
	if (level < 0 && c->err->msg_code == JWRN_JPEG_EOF) e->truncated = 1;
}

typedef struct {
	int width, height, components, color_space;
} pp_jpeg_info;

static void pp_jpeg_setup(struct jpeg_decompress_struct *d, pp_jpeg_error *e) {
	d->err = jpeg_std_error(&e->pub);
	e->pub.error_exit = pp_jpeg_exit;
	e->pub.emit_message = pp_jpeg_emit;
	e->truncated = 0;
	e->msg[0] = 0;
}

// pp_jpeg_header reads the header; scale_denom (1, 2, 4, 8) gives the
// output size of a DCT-scaled decode. Returns 0, or 1 with msg set.
static int pp_jpeg_header(const unsigned char *data, unsigned long size, int scale_denom, pp_jpeg_info *info, char *msg) {
	struct jpeg_decompress_struct d;
	pp_jpeg_error e;
	pp_jpeg_setup(&d, &e);
	if (setjmp(e.jump)) {
		strncpy(msg, e.msg, JMSG_LENGTH_MAX);
		jpeg_destroy_decompress(&d);
		return 1;
	}
	jpeg_create_decompress(&d);
	jpeg_mem_src(&d, data, size);
	jpeg_read_header(&d, TRUE);
	d.scale_num = 1;
	d.scale_denom = scale_denom;
	jpeg_calc_output_dimensions(&d);
	info->width = d.output_width;
	info->height = d.output_height;
	info->components = d.num_components;
	info->color_space = d.jpeg_color_space;
	jpeg_destroy_decompress(&d);
	return 0;
}

// pp_jpeg_decode decodes into out (stride bytes per row) in out_space:
// JCS_GRAYSCALE, JCS_RGB or JCS_CMYK. Returns 0, 1 with msg set, or 2
// when the data ran out before the image did.
static int pp_jpeg_decode(const unsigned char *data, unsigned long size, int scale_denom, int out_space,
                          unsigned char *out, int stride, char *msg) {
	struct jpeg_decompress_struct d;
	pp_jpeg_error e;
	pp_jpeg_setup(&d, &e);
	if (setjmp(e.jump)) {
		strncpy(msg, e.msg, JMSG_LENGTH_MAX);
		jpeg_destroy_decompress(&d);
		return 1;
	}
	jpeg_create_decompress(&d);
	jpeg_mem_src(&d, data, size);
	jpeg_read_header(&d, TRUE);
	d.out_color_space = (J_COLOR_SPACE)out_space;
	d.dct_method = JDCT_ISLOW;
	d.do_fancy_upsampling = TRUE;
	d.scale_num = 1;
	d.scale_denom = scale_denom;
	jpeg_start_decompress(&d);
	while (d.output_scanline < d.output_height) {
		JSAMPROW rows[16];
		int n = 0;
		for (; n < 16 && d.output_scanline + n < d.output_height; n++)
			rows[n] = out + (size_t)(d.output_scanline + n) * stride;
		jpeg_read_scanlines(&d, rows, n);
	}
	jpeg_finish_decompress(&d);
	int truncated = e.truncated;
	jpeg_destroy_decompress(&d);
	return truncated ? 2 : 0;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"image"
	"unsafe"
)

// ErrTruncated: the data ended before the image did.
var ErrTruncated = errors.New("jpeg: truncated data")

// Info is what the header says about an image.
type Info struct {
	// Width and Height are the output size: the image's, or its
	// DCT-scaled size when Config was asked for a scale.
	Width, Height int
	// Components is 1 (grey), 3 (Y'CbCr or RGB) or 4 (CMYK or YCCK).
	Components int
}

// Config reads the header: the image size divided by scale (1, 2, 4 or
// 8; the size libjpeg decodes at that scale, rounded up).
func Config(data []byte, scale int) (Info, error) {
	info, err := header(data, scale)
	if err != nil {
		return Info{}, err
	}
	return Info{Width: int(info.width), Height: int(info.height), Components: int(info.components)}, nil
}

func header(data []byte, scale int) (C.pp_jpeg_info, error) {
	var info C.pp_jpeg_info
	if len(data) == 0 {
		return info, errors.New("jpeg: no data")
	}
	if scale != 1 && scale != 2 && scale != 4 && scale != 8 {
		return info, fmt.Errorf("jpeg: scale 1/%d: use 1, 2, 4 or 8", scale)
	}
	msg := (*C.char)(C.calloc(C.JMSG_LENGTH_MAX, 1))
	defer C.free(unsafe.Pointer(msg))
	if C.pp_jpeg_header((*C.uchar)(unsafe.Pointer(&data[0])), C.ulong(len(data)), C.int(scale), &info, msg) != 0 {
		return info, fmt.Errorf("jpeg: %s", C.GoString(msg))
	}
	return info, nil
}

// Decode decodes a JPEG at 1/scale of its size: an *image.Gray for grey
// images, an *image.CMYK for CMYK and YCCK ones (inverted as Pillow
// inverts every CMYK JPEG, assuming Adobe's convention; 0 is no ink),
// else the RGB pixels through rgb, which allocates w*h*3 bytes and
// returns them with the image that holds them (the caller's RGB type).
func Decode(data []byte, scale int, rgb func(w, h int) (image.Image, []byte)) (image.Image, error) {
	info, err := header(data, scale)
	if err != nil {
		return nil, err
	}
	w, h := int(info.width), int(info.height)
	var (
		img    image.Image
		pix    []byte
		stride int
		space  C.int
	)
	switch info.color_space {
	case C.JCS_GRAYSCALE:
		g := image.NewGray(image.Rect(0, 0, w, h))
		img, pix, stride, space = g, g.Pix, g.Stride, C.JCS_GRAYSCALE
	case C.JCS_CMYK, C.JCS_YCCK:
		m := image.NewCMYK(image.Rect(0, 0, w, h))
		img, pix, stride, space = m, m.Pix, m.Stride, C.JCS_CMYK
	default:
		img, pix = rgb(w, h)
		stride, space = w*3, C.JCS_RGB
	}
	msg := (*C.char)(C.calloc(C.JMSG_LENGTH_MAX, 1))
	defer C.free(unsafe.Pointer(msg))
	switch C.pp_jpeg_decode((*C.uchar)(unsafe.Pointer(&data[0])), C.ulong(len(data)), C.int(scale), space,
		(*C.uchar)(unsafe.Pointer(&pix[0])), C.int(stride), msg) {
	case 1:
		return nil, fmt.Errorf("jpeg: %s", C.GoString(msg))
	case 2:
		return nil, ErrTruncated
	}
	if space == C.JCS_CMYK { // Pillow reads every CMYK JPEG as inverted ("CMYK;I")
		for i := range pix {
			pix[i] = 255 - pix[i]
		}
	}
	return img, nil
}
