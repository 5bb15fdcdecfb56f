module leakgate/targets/go/leaktarget

go 1.19
