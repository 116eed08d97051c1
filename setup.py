from pathlib import Path

from setuptools import setup

setup(
    name="fastacgan",
    version="0.1.0",
    description="A fast trainer for Auxiliary Classifier GANs: torch.compile, AMP, Triton kernels, DALI loading",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    # kernels/ is installed as fastacgan.kernels: a top-level `kernels` would collide with PyPI's `kernels`
    packages=["fastacgan", "fastacgan.kernels"],
    package_dir={"fastacgan": "fastacgan", "fastacgan.kernels": "kernels"},
    install_requires=[
        "torch>=2.6,<3",  # torch.library.triton_op (the fused kernels) is 2.6+
        "numpy>=1.24",
        "pillow>=9.5",
        # Triton ships inside CUDA builds of torch; this pulls it in for CPU builds too (the interpreter)
        "triton>=3.0; platform_system == 'Linux' and platform_machine == 'x86_64'",
        # GPU JPEG decoding; it also runs CPU-only pipelines, and the trainer works without it (--loader torch)
        "nvidia-dali-cuda130; platform_system == 'Linux' and platform_machine in 'x86_64 aarch64'",
    ],
    extras_require={"test": ["pytest>=7", "pytest-benchmark>=4"]},
    entry_points={
        "console_scripts": [
            "fastacgan=fastacgan.__main__:main",
            "fastacgan-train=fastacgan.train:main",
            "fastacgan-sample=fastacgan.sample:main",
            "fastacgan-evaluate=fastacgan.evaluate:main",
            "fastacgan-plots=fastacgan.plots:main",
            "fastacgan-export=fastacgan.export:main",
        ]
    },
)
