// A C++ producer on a tachyon bus: includes the C header, connects to the
// listener at the path given on the command line and sends a few readings.
//
//     sender SOCKET_PATH COUNT
//
// receive.py in this folder is the other end (a Python consumer); it starts
// this program itself. Build: see CMakeLists.txt here, or
//     c++ -std=c++17 sender.cpp $(pkg-config --cflags --libs tachyon) -o sender
#include <tachyon/tachyon.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

// Owns one reference to a bus; closes and drops it on scope exit.
class Bus {
public:
	explicit Bus(tachyon_bus *bus) : bus_(bus) {}
	Bus(const Bus &) = delete;
	Bus &operator=(const Bus &) = delete;
	~Bus()
	{
		tachyon_bus_close(bus_); // publishes what was sent, then marks the ring closed
		tachyon_bus_unref(bus_);
	}
	tachyon_bus *get() const { return bus_; }

private:
	tachyon_bus *bus_;
};

int fail(const char *what, int rc)
{
	std::fprintf(stderr, "sender: %s: %s\n", what, tachyon_strerror(rc));
	return 1;
}

} // namespace

int main(int argc, char **argv)
{
	if (argc != 3) {
		std::fprintf(stderr, "usage: %s SOCKET_PATH COUNT\n", argv[0]);
		return 2;
	}
	const int count = std::atoi(argv[2]);

	// One deadline covers waiting for the listener and the whole handshake.
	tachyon_wait connect_wait{};
	connect_wait.deadline_ns = tachyon_deadline_after(INT64_C(5000000000));
	tachyon_bus *raw = nullptr;
	int rc = tachyon_bus_connect(argv[1], &connect_wait, &raw);
	if (rc < 0)
		return fail("connect", rc);
	Bus bus(raw);

	// Each send waits for room for as long as it takes.
	tachyon_wait send_wait{};
	send_wait.deadline_ns = TACHYON_FOREVER;
	for (int i = 0; i < count; i++) {
		const std::string text = "reading " + std::to_string(i * i);
		rc = tachyon_bus_send(bus.get(), text.data(), text.size(), static_cast<uint32_t>(i), &send_wait);
		if (rc < 0)
			return fail("send", rc);
	}
	return 0;
}
