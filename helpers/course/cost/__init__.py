"""The cost model: FLOPs and memory per training, device throughputs, a CPU calibration, estimates per notebook."""
