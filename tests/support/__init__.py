"""What the tests share: live engine fixtures, the bridge and server runners, the
reference listwise model, raw HTTP and the engine tap. Imported as `support.<module>`."""
