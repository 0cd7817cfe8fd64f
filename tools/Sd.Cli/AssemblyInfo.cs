using System.Runtime.CompilerServices;

// The infotext reader and the A1111 sampler names are tested against A1111's own parsing and naming.
[assembly: InternalsVisibleTo("Sd.Cli.Tests")]
