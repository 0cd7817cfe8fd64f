using System.Runtime.CompilerServices;

[assembly: InternalsVisibleTo("Sd.Kernels.Tests")]
