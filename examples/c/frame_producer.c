/*
 * A C producer of tensor frames: arrays whose dtype and shape travel with
 * the data (ABI.md, "Tensor frames"), so a Python consumer reads them back
 * with rx.array() and no reshaping.
 *
 *     frame_producer SOCKET_PATH
 *
 * It connects to the listener at SOCKET_PATH and sends three 3x4 float32
 * matrices and one 480x640x3 uint8 image. Each frame is built in place in
 * the ring: reserve a slot of the frame's payload size, write the header
 * with tachyon_tensor_frame_encode, write the array right where the header
 * says its data goes, commit. receive_frames.py in this folder is the other
 * end; it starts this program itself. Build: see CMakeLists.txt here, or
 *     cc -std=c11 frame_producer.c $(pkg-config --cflags --libs tachyon) -o frame_producer
 */
#include <tachyon/tachyon.h>

#include <stdio.h>
#include <stdlib.h>

#define MATRIX 1 /* message types (the frame's tag) of the two kinds of array */
#define IMAGE 2

enum { ROWS = 3, COLS = 4, HEIGHT = 480, WIDTH = 640, CHANNELS = 3 };

/* A frame in the making: the reserved payload and where its data starts. */
struct frame_slot {
	size_t payload_size;
	void *data;
};

/*
 * Reserve a slot for the array f describes (waiting for room as long as it
 * takes) and write f's header at the start of its payload. On success the
 * caller fills slot->data with f->data_size bytes and commits; on failure
 * nothing is left reserved. Returns 0 or a negative code: from the bus
 * (tachyon_strerror) for reserve, from the frame helpers otherwise, which
 * *frame_error tells apart.
 */
static int begin_frame(tachyon_bus *bus, const tachyon_tensor_frame *f, struct frame_slot *slot,
                       int *frame_error)
{
	const tachyon_wait forever = {.deadline_ns = TACHYON_FOREVER};
	void *payload = NULL;
	int rc;

	slot->payload_size = (size_t)tachyon_tensor_frame_payload_size(f);
	*frame_error = 0;
	rc = tachyon_bus_reserve(bus, slot->payload_size, &payload, &forever);
	if (rc < 0)
		return rc;
	rc = tachyon_tensor_frame_encode(payload, slot->payload_size, f);
	if (rc < 0) {
		tachyon_bus_rollback(bus);
		*frame_error = 1;
		return rc;
	}
	/* data_offset is a multiple of 64 from a 64-aligned payload start, so
	 * the data sits on a cache line of its own. */
	slot->data = (unsigned char *)payload + f->data_offset;
	return 0;
}

/* Commit the frame under message type tag and publish it at once: frames
 * are few and large, there is nothing to gain by batching them. */
static int end_frame(tachyon_bus *bus, const struct frame_slot *slot, uint16_t tag)
{
	int rc = tachyon_bus_commit(bus, slot->payload_size, TACHYON_FRAME_TYPE_ID(tag));
	return rc < 0 ? rc : tachyon_bus_flush(bus);
}

static int fail(const char *what, int rc, int frame_error)
{
	fprintf(stderr, "frame_producer: %s: %s\n", what,
	        frame_error ? tachyon_tensor_frame_strerror(rc) : tachyon_strerror(rc));
	return 1;
}

static int send_matrices(tachyon_bus *bus)
{
	const int64_t shape[2] = {ROWS, COLS};
	tachyon_tensor_frame f;
	struct frame_slot slot;
	int frame_error, rc;

	rc = tachyon_tensor_frame_init(&f, TACHYON_DT_FLOAT, 32, 2, shape);
	if (rc < 0)
		return fail("describe the matrix", rc, 1);
	for (int k = 0; k < 3; k++) {
		rc = begin_frame(bus, &f, &slot, &frame_error);
		if (rc < 0)
			return fail("start a matrix", rc, frame_error);
		float *m = slot.data; /* C order: element (i, j) at i * COLS + j */
		for (int i = 0; i < ROWS; i++)
			for (int j = 0; j < COLS; j++)
				m[i * COLS + j] = (float)(k + 1) * (float)(i * COLS + j) * 0.5f;
		rc = end_frame(bus, &slot, MATRIX);
		if (rc < 0)
			return fail("send a matrix", rc, 0);
	}
	return 0;
}

static int send_image(tachyon_bus *bus)
{
	const int64_t shape[3] = {HEIGHT, WIDTH, CHANNELS};
	tachyon_tensor_frame f;
	struct frame_slot slot;
	int frame_error, rc;

	rc = tachyon_tensor_frame_init(&f, TACHYON_DT_UINT, 8, 3, shape);
	if (rc < 0)
		return fail("describe the image", rc, 1);
	rc = begin_frame(bus, &f, &slot, &frame_error);
	if (rc < 0)
		return fail("start the image", rc, frame_error);
	/* A test pattern drawn straight into the ring: red rises along each
	 * row, green down the image, blue is constant. */
	unsigned char *px = slot.data;
	for (int y = 0; y < HEIGHT; y++) {
		for (int x = 0; x < WIDTH; x++) {
			unsigned char *p = px + ((size_t)y * WIDTH + (size_t)x) * CHANNELS;
			p[0] = (unsigned char)(x % 256);
			p[1] = (unsigned char)(y % 256);
			p[2] = 200;
		}
	}
	rc = end_frame(bus, &slot, IMAGE);
	if (rc < 0)
		return fail("send the image", rc, 0);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s SOCKET_PATH\n", argv[0]);
		return 2;
	}

	/* One deadline covers waiting for the listener and the whole handshake. */
	const tachyon_wait connect_wait = {.deadline_ns = tachyon_deadline_after(INT64_C(5000000000))};
	tachyon_bus *bus = NULL;
	int rc = tachyon_bus_connect(argv[1], &connect_wait, &bus);
	if (rc < 0) {
		fprintf(stderr, "frame_producer: connect: %s (%s)\n", tachyon_strerror(rc), tachyon_handshake_detail());
		return 1;
	}

	int status = send_matrices(bus);
	if (status == 0)
		status = send_image(bus);

	tachyon_bus_close(bus); /* publishes what was sent, then marks the ring closed */
	tachyon_bus_unref(bus);
	return status;
}
