"""Reading Sentinel-1 SAFE products: manifest, annotations, calibration and noise LUTs, measurements."""
