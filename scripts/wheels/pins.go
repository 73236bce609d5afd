package main

// ortVersion is the one ONNX Runtime version of both library sets: the CPU
// default (the onnxruntime wheel) and the CUDA build (the onnxruntime-gpu
// wheel). A CUDA provider library only works with the core library of its
// own build, so each set carries its own core library, and both come from
// the same release. onnxruntime_go v1.27 needs C API version 24: 1.24 or
// newer.
const ortVersion = "1.24.4"

// sets are the wheels each `-set` installs, pinned by file name, size and
// SHA-256 (what `pip download` would fetch for Linux x86-64, read from PyPI's
// index). keep names the wheel members to unpack; everything else in a
// wheel (Python code, headers, TensorRT's provider) is skipped.
//
// The CUDA libraries are the newest CUDA 12 builds, except cuDNN: 9.10.2 is
// the last cuDNN 9 whose ops and cnn libraries carry sm_70 (V100) code;
// 9.11 and later start at sm_75 (read with `paliprompt check` /
// cudabin; TestGPUSetupHasVoltaCode guards it).
var sets = map[string][]wheel{
	"cpu": {
		{
			Project: "onnxruntime", Version: ortVersion,
			File:   "onnxruntime-1.24.4-cp312-cp312-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
			Size:   17244912,
			SHA256: "0d640eb9f3782689b55cfa715094474cd5662f2f137be6a6f847a594b6e9705c",
			Keep:   []member{{Glob: "onnxruntime/capi/libonnxruntime.so." + ortVersion, As: "libonnxruntime.so.1"}},
		},
	},
	"gpu": {
		{
			Project: "onnxruntime-gpu", Version: ortVersion,
			File:   "onnxruntime_gpu-1.24.4-cp312-cp312-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
			Size:   252765531,
			SHA256: "eb0e38f0c1ef3b76ae0081c8e51eed20dd8925aa916f0fc6f9b8b17d05610e99",
			Keep: []member{
				{Glob: "onnxruntime/capi/libonnxruntime.so." + ortVersion, As: "libonnxruntime.so.1"},
				{Glob: "onnxruntime/capi/libonnxruntime_providers_shared.so"},
				{Glob: "onnxruntime/capi/libonnxruntime_providers_cuda.so"},
			},
		},
		{
			Project: "nvidia-cuda-runtime-cu12", Version: "12.9.79",
			File:   "nvidia_cuda_runtime_cu12-12.9.79-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
			Size:   3493179,
			SHA256: "25bba2dfb01d48a9b59ca474a1ac43c6ebf7011f1b0b8cc44f54eb6ac48a96c3",
			Keep:   []member{{Glob: "nvidia/cuda_runtime/lib/libcudart.so.12"}},
		},
		{
			Project: "nvidia-cublas-cu12", Version: "12.9.3.13",
			File:   "nvidia_cublas_cu12-12.9.3.13-py3-none-manylinux_2_27_x86_64.whl",
			Size:   581217458,
			SHA256: "d7d51055f161b317c7105ddaae90e71eda059026074ffef93cf7cde2886bfe72",
			Keep:   []member{{Glob: "nvidia/cublas/lib/libcublas.so.12"}, {Glob: "nvidia/cublas/lib/libcublasLt.so.12"}},
		},
		{
			Project: "nvidia-cudnn-cu12", Version: "9.10.2.21",
			File:   "nvidia_cudnn_cu12-9.10.2.21-py3-none-manylinux_2_27_x86_64.whl",
			Size:   706758467,
			SHA256: "949452be657fa16687d0930933f032835951ef0892b37d2d53824d1a84dc97a8",
			// libcudnn.so.9 loads the others by name at run time.
			Keep: []member{{Glob: "nvidia/cudnn/lib/libcudnn*.so.9"}},
		},
		{
			Project: "nvidia-cufft-cu12", Version: "11.4.1.4",
			File:   "nvidia_cufft_cu12-11.4.1.4-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
			Size:   200877592,
			SHA256: "c67884f2a7d276b4b80eb56a79322a95df592ae5e765cf1243693365ccab4e28",
			Keep:   []member{{Glob: "nvidia/cufft/lib/libcufft.so.11"}},
		},
		{
			Project: "nvidia-curand-cu12", Version: "10.3.10.19",
			File:   "nvidia_curand_cu12-10.3.10.19-py3-none-manylinux_2_27_x86_64.whl",
			Size:   68295626,
			SHA256: "49b274db4780d421bd2ccd362e1415c13887c53c214f0d4b761752b8f9f6aa1e",
			Keep:   []member{{Glob: "nvidia/curand/lib/libcurand.so.10"}},
		},
		{
			// Run-time compilation: cuDNN's runtime-compiled engines and cuBLAS.
			Project: "nvidia-cuda-nvrtc-cu12", Version: "12.9.86",
			File:   "nvidia_cuda_nvrtc_cu12-12.9.86-py3-none-manylinux2010_x86_64.manylinux_2_12_x86_64.whl",
			Size:   89568129,
			SHA256: "210cf05005a447e29214e9ce50851e83fc5f4358df8b453155d5e1918094dcb4",
			Keep:   []member{{Glob: "nvidia/cuda_nvrtc/lib/libnvrtc.so.12"}, {Glob: "nvidia/cuda_nvrtc/lib/libnvrtc-builtins.so.12.9"}},
		},
		{
			// cuFFT links its kernels at run time with nvJitLink (the wheel's dependency).
			Project: "nvidia-nvjitlink-cu12", Version: "12.9.86",
			File:   "nvidia_nvjitlink_cu12-12.9.86-py3-none-manylinux2010_x86_64.manylinux_2_12_x86_64.whl",
			Size:   39748338,
			SHA256: "e3f1171dbdc83c5932a45f0f4c99180a70de9bd2718c1ab77d14104f6d7147f9",
			Keep:   []member{{Glob: "nvidia/nvjitlink/lib/libnvJitLink.so.12"}},
		},
	},
}
