{
  "targets": [
    {
      "target_name": "peftjs",
      "sources": [
        "<!@(node -p \"require('fs').readdirSync('native').filter(f => f.endsWith('.cc')).map(f => 'native/' + f).join(' ')\")"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "/usr/include/x86_64-linux-gnu/openblas-pthread"
      ],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-O3", "-march=native", "-fopenmp", "-fexceptions", "-frtti", "-ffp-contract=fast", "-fno-trapping-math"],
      "libraries": [
        "-L/usr/lib/x86_64-linux-gnu/openblas-pthread",
        "-Wl,-rpath,/usr/lib/x86_64-linux-gnu/openblas-pthread",
        "-lopenblas",
        "-ldnnl",
        "-fopenmp"
      ]
    }
  ]
}
