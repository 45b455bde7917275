"""The Python shim's side of the shared protocol vectors (shims/protocol-vectors.json)."""

import json
import os
import unittest

import hearth_worker

VECTORS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "protocol-vectors.json")


def load_vectors():
    with open(VECTORS, encoding="utf-8") as f:
        data = json.load(f)
    assert data["protocol"] == hearth_worker.PROTOCOL
    return data["vectors"]


class VectorTests(unittest.TestCase):
    def test_every_frame_decodes_to_its_meaning(self):
        for v in load_vectors():
            with self.subTest(v["name"]):
                read_fd, write_fd = os.pipe()
                try:
                    os.write(write_fd, bytes.fromhex(v["hex"]))
                    os.close(write_fd)
                    self.assertEqual(hearth_worker.read_frame(read_fd), v["message"])
                finally:
                    os.close(read_fd)

    def test_worker_messages_encode_to_the_vector_bytes(self):
        for v in load_vectors():
            if v["direction"] != "worker_to_daemon":
                continue
            with self.subTest(v["name"]):
                self.assertEqual(hearth_worker.encode_frame(v["message"]).hex(), v["hex"])

    def test_end_of_file_means_closed(self):
        read_fd, write_fd = os.pipe()
        os.write(write_fd, b"\x00\x00\x00\x05ab")
        os.close(write_fd)
        with self.assertRaises(hearth_worker.ChannelClosed):
            hearth_worker.read_frame(read_fd)
        os.close(read_fd)

    def test_oversized_frame_is_refused(self):
        read_fd, write_fd = os.pipe()
        os.write(write_fd, b"\xff\xff\xff\xff")
        os.close(write_fd)
        with self.assertRaises(hearth_worker.ProtocolError):
            hearth_worker.read_frame(read_fd)
        os.close(read_fd)


class HandlerShapeTests(unittest.TestCase):
    def test_arity(self):
        self.assertTrue(hearth_worker.takes_one_argument(lambda event: None))
        self.assertFalse(hearth_worker.takes_one_argument(lambda event, context: None))
        self.assertFalse(hearth_worker.takes_one_argument(lambda *args: None))
        self.assertTrue(hearth_worker.takes_one_argument(lambda event, *, debug=False: None))


if __name__ == "__main__":
    unittest.main()
