# Manual check (not run in CI): PyTorch consumes ft::to_dlpack and ft consumes torch.utils.dlpack.to_dlpack,
# zero copy. g++ -std=c++20 -O1 -fPIC -shared -Iinclude tests/data/check_dlpack_torch/dlp.cpp -o /tmp/libdlp.so
# then: /usr/bin/python3 tests/data/check_dlpack_torch/dlp.py   (torch 1.13 CPU)
import ctypes, torch, torch.utils.dlpack as tud
lib = ctypes.CDLL("/tmp/libdlp.so"); lib.ft_make.restype = ctypes.c_void_p; lib.ft_sum_from_torch.restype = ctypes.c_double
PyCapsule_New = ctypes.pythonapi.PyCapsule_New; PyCapsule_New.restype = ctypes.py_object
PyCapsule_New.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
t = tud.from_dlpack(PyCapsule_New(lib.ft_make(), b"dltensor", None))
print("torch sees ft's transposed view:", t.tolist(), t.stride(), t.dtype)
x = torch.arange(4, dtype=torch.float64)
cap = tud.to_dlpack(x)
PyCapsule_GetPointer = ctypes.pythonapi.PyCapsule_GetPointer; PyCapsule_GetPointer.restype = ctypes.c_void_p
PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
ptr = PyCapsule_GetPointer(cap, b"dltensor")
PyCapsule_SetName = ctypes.pythonapi.PyCapsule_SetName; PyCapsule_SetName.argtypes = [ctypes.py_object, ctypes.c_char_p]
PyCapsule_SetName(cap, b"used_dltensor")  # the consumer now owns it
print("ft's sum of torch's tensor:", lib.ft_sum_from_torch(ctypes.c_void_p(ptr)), "; torch after ft wrote x*10:", x.tolist())
